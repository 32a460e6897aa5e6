/**
 * The search page: one self-contained HTML document (inline CSS and JS, no build step, no
 * third-party requests). It calls the gateway's REST paths, like any other client:
 *
 * - galleries: /demo/search (the demo gallery), /inference/text-to-image (the dataset gallery
 *   Ranking serves), /inference/upload-image (a photo → its captions and similar images; also
 *   "more like this" on a gallery hit: the hit's bytes, fetched from its image_url, go up as the
 *   photo), /demo/queries and /model/status;
 * - collections (users' own photos): GET /v1/collections, POST /v1/collections/<id>:search by
 *   text, by photo (`image`, base64) and "more like this" (`photo_id`), and each hit's
 *   thumbnail_url (/v1/collections/<id>/photos/<photo_id>/thumbnail) as the <img> source.
 *
 * Which gallery it opens on (choose-gallery.ts): `?gallery=` when it names something searchable,
 * else what Ranking serves — the dataset gallery when one other than the demo serves (told
 * apart by comparing /model/status's index.dataset_version with a one-hit /demo/search's
 * dataset_version), else the demo.
 *
 * Shareable URLs: `?gallery=demo|serving|collections/<id>`, plus `q=<text>` (a text search) or,
 * on a collection, `like=<photo_id>` ("more like this"). A photo search has no URL of its own.
 *
 * Scores shown are the ones the order follows: a gallery hit's `rank_score` (cosine plus the
 * image's query-bank bias) when Ranking sends one, else its `score`; a collection hit's `score`
 * already is that.
 *
 * Tests (services/ranking/src/e2e) use the data-testid attributes; keep them stable.
 */
import { LIMITS, ranking } from "@glimpse/api";
import { chooseGallery } from "./choose-gallery.js";

/** /model/status's state as the page shows it: the generated enum's names without their prefix, in lower case ("serving"). */
const serving = ranking.ModelStateSchema.value[ranking.ModelState.SERVING]!;
const STATE_PREFIX = serving.name.slice(0, serving.name.length - serving.localName.length);
const SERVING = serving.localName.toLowerCase();
const IMAGE_MAX_MIB = Math.floor(LIMITS.imageMaxBytes / (1024 * 1024));

export const SEARCH_PAGE = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Glimpse — image search</title>
<style>
  :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --muted:#667085; --line:#e4e7ec; --accent:#3358d4; --accent-soft:#e8edfb; --ok:#12805c; --bad:#b42318; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; color:var(--ink); background:var(--bg); }
  header { background:#fff; border-bottom:1px solid var(--line); }
  .wrap { max-width:1240px; margin:0 auto; padding:0 24px; }
  .top { display:flex; align-items:center; gap:16px; padding:14px 0; flex-wrap:wrap; }
  .brand { font-weight:700; font-size:20px; letter-spacing:-.01em; display:flex; align-items:center; gap:8px; }
  .brand .dot { width:12px; height:12px; border-radius:50%; background:linear-gradient(135deg,#3358d4,#12a4d4); display:inline-block; }
  .tag { color:var(--muted); font-size:14px; }
  .versions { margin-left:auto; display:flex; gap:8px; flex-wrap:wrap; }
  .pill { font:12px/1 ui-monospace,SFMono-Regular,Menlo,monospace; background:var(--accent-soft); color:#22367f; border-radius:999px; padding:6px 10px; white-space:nowrap; }
  .pill.state-ok { background:#e3f4ec; color:var(--ok); } .pill.state-bad { background:#fde8e6; color:var(--bad); }
  .sr-only { position:absolute; width:1px; height:1px; padding:0; margin:-1px; overflow:hidden; clip:rect(0,0,0,0); white-space:nowrap; border:0; }
  main { padding:24px 0 48px; }
  .panel { background:var(--card); border:1px solid var(--line); border-radius:14px; padding:18px; box-shadow:0 1px 2px rgba(16,24,40,.04); }
  .searchrow { display:flex; gap:10px; flex-wrap:wrap; }
  .searchrow input[type=search] { flex:1 1 380px; font-size:17px; padding:12px 14px; border:1px solid #cfd4dc; border-radius:10px; outline:none; }
  .searchrow input[type=search]:focus { border-color:var(--accent); box-shadow:0 0 0 3px var(--accent-soft); }
  button, .btn { font:inherit; font-weight:600; border:0; border-radius:10px; padding:12px 18px; background:var(--accent); color:#fff; cursor:pointer; }
  button.secondary, .btn.secondary { background:#fff; color:var(--ink); border:1px solid #cfd4dc; }
  button:focus-visible, select:focus-visible, .drop:focus-visible, .chip:focus-visible { outline:3px solid var(--accent); outline-offset:2px; }
  select { font:inherit; padding:11px 10px; border:1px solid #cfd4dc; border-radius:10px; background:#fff; max-width:320px; }
  .hint { color:var(--muted); font-size:13px; margin-top:10px; }
  .qphoto { display:flex; align-items:center; gap:10px; margin-top:12px; font-size:13px; color:var(--muted); }
  .qphoto[hidden] { display:none; }
  .qphoto img { width:48px; height:48px; object-fit:cover; border-radius:8px; border:1px solid var(--line); }
  .chips { display:flex; gap:8px; flex-wrap:wrap; margin-top:12px; }
  .chip { font-size:13px; border:1px solid var(--line); background:#fff; color:var(--ink); border-radius:999px; padding:6px 12px; cursor:pointer; font-weight:500; }
  .chip:hover { border-color:var(--accent); color:var(--accent); }
  .meta { color:var(--muted); font-size:13px; margin:16px 2px 10px; min-height:18px; }
  .error { color:var(--bad); background:#fde8e6; border-radius:10px; padding:10px 12px; margin-top:12px; display:none; }
  .grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(210px,1fr)); gap:16px; }
  .card { background:var(--card); border:1px solid var(--line); border-radius:12px; overflow:hidden; display:flex; flex-direction:column; box-shadow:0 1px 2px rgba(16,24,40,.05); }
  .card .img { position:relative; aspect-ratio:1/1; background:#eef0f3; }
  .card img { position:absolute; inset:0; z-index:1; width:100%; height:100%; object-fit:cover; display:block; }
  .card .missing { position:absolute; inset:0; display:flex; align-items:center; justify-content:center; color:var(--muted); font-size:12px; padding:8px; text-align:center; word-break:break-all; }
  .badge { z-index:2; position:absolute; top:8px; left:8px; background:rgba(17,24,39,.78); color:#fff; font-size:12px; font-weight:600; border-radius:999px; padding:3px 9px; }
  .score { z-index:2; position:absolute; top:8px; right:8px; background:#fff; color:var(--ink); font:12px ui-monospace,Menlo,monospace; border-radius:999px; padding:3px 8px; box-shadow:0 1px 3px rgba(0,0,0,.15); }
  .bar { height:4px; background:#eef0f3; } .bar span { display:block; height:100%; background:linear-gradient(90deg,#3358d4,#12a4d4); }
  .card .caps { padding:10px 12px 12px; font-size:13px; color:#344054; flex:1; }
  .card .caps p { margin:0 0 4px; } .card .caps .more { color:var(--muted); font-size:12px; }
  .card .caps .path { font-weight:600; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
  .card .id { font:11px ui-monospace,Menlo,monospace; color:var(--muted); padding:0 12px 10px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
  .card .actions { padding:0 12px 12px; }
  .card .actions button { font-size:12px; padding:6px 10px; border-radius:8px; }
  h2 { font-size:16px; margin:0 0 12px; }
  .two { display:grid; grid-template-columns:minmax(260px,340px) 1fr; gap:20px; margin-top:28px; }
  .two[hidden] { display:none; }
  @media (max-width:820px){ .two { grid-template-columns:1fr; } }
  .drop { display:block; border:2px dashed #cfd4dc; border-radius:12px; padding:18px; text-align:center; color:var(--muted); cursor:pointer; }
  .drop.over { border-color:var(--accent); background:var(--accent-soft); }
  .drop img { max-width:100%; max-height:260px; border-radius:8px; margin:12px auto 0; display:none; }
  .overlay { position:fixed; inset:0; z-index:10; display:none; align-items:center; justify-content:center; background:rgba(51,88,212,.12); border:4px dashed var(--accent); color:#22367f; font-size:22px; font-weight:700; pointer-events:none; }
  body.dragging .overlay { display:flex; }
  ol.captions { margin:0; padding:0; list-style:none; }
  ol.captions li { display:flex; gap:10px; align-items:baseline; padding:9px 0; border-bottom:1px solid var(--line); }
  ol.captions li:last-child { border-bottom:0; }
  ol.captions .s { font:12px ui-monospace,Menlo,monospace; color:var(--accent); min-width:48px; }
  .similar { margin-top:16px; } .similar .grid { grid-template-columns:repeat(auto-fill,minmax(120px,1fr)); gap:10px; }
  .similar .card .caps, .similar .card .id, .similar .card .actions { display:none; }
  footer { color:var(--muted); font-size:12px; padding:0 0 32px; }
  .empty { color:var(--muted); padding:28px; text-align:center; border:1px dashed var(--line); border-radius:12px; }
</style>
</head>
<body>
<div class="overlay" id="drop-overlay" data-testid="drop-overlay" aria-hidden="true">Drop the photo to search by it</div>
<header><div class="wrap top">
  <div class="brand"><span class="dot"></span>Glimpse</div>
  <div class="tag">type a sentence, get the photos — drop a photo, get the ones like it</div>
  <div class="versions">
    <span class="pill" id="state" data-testid="state">model …</span>
    <span class="pill" id="model-version" data-testid="model-version" title="model version">model —</span>
    <span class="pill" id="dataset-version" data-testid="dataset-version" title="version of the gallery or collection searched">dataset —</span>
  </div>
</div></header>
<main class="wrap">
  <section class="panel" aria-label="Search">
    <form id="search-form" class="searchrow" autocomplete="off" role="search">
      <label class="sr-only" for="query">Describe a photo</label>
      <input type="search" id="query" name="query" placeholder="Describe a photo, e.g. “a dog running through the snow”" maxlength="${LIMITS.queryMaxChars}" data-testid="query" autofocus>
      <label class="sr-only" for="gallery">Search in</label>
      <select id="gallery" name="gallery" data-testid="gallery">
        <optgroup label="Galleries" id="galleries"><option value="demo">Demo gallery</option></optgroup>
      </select>
      <button type="submit" data-testid="search">Search</button>
      <button type="button" class="secondary" id="photo-button" data-testid="photo-button" aria-controls="file">Search by photo…</button>
      <input type="file" id="file" accept="image/jpeg,image/png,image/webp" hidden data-testid="upload" aria-label="Choose a photo to search by">
    </form>
    <div class="hint" id="hint">Or drop a photo anywhere on the page.</div>
    <div class="qphoto" id="query-photo" data-testid="query-photo" hidden><img id="query-photo-img" alt="the photo searched by"><span id="query-photo-text"></span></div>
    <div class="chips" id="chips"></div>
    <div class="error" id="search-error" role="alert"></div>
  </section>
  <div class="meta" id="meta" data-testid="meta" role="status" aria-live="polite"></div>
  <section id="results" class="grid" data-testid="results" aria-label="Results"></section>

  <section class="two" id="photo-section" data-testid="photo-section">
    <div class="panel">
      <h2>Image → captions</h2>
      <label class="drop" id="drop" data-testid="drop" for="file" tabindex="0" role="button" aria-describedby="drop-text">
        <div id="drop-text">Drop a JPEG, PNG or WebP here, or click to choose one</div>
        <img id="preview" alt="uploaded image">
      </label>
      <div class="error" id="upload-error" role="alert"></div>
    </div>
    <div class="panel">
      <h2>Captions that fit <span class="tag" id="upload-meta"></span></h2>
      <ol class="captions" id="captions" data-testid="captions" aria-live="polite"><li class="tag">Upload a photo to see the captions that describe it best.</li></ol>
      <div class="similar" id="similar-wrap" hidden><h2>Similar photos</h2><div class="grid" id="similar" data-testid="similar"></div></div>
    </div>
  </section>
</main>
<footer class="wrap" id="footer">Photos: Flickr8K (Hodosh, Young &amp; Hockenmaier, 2013), Flickr images for research use; collections are your own. Scores are the ones the results are ordered by: the cosine similarity of the model's image and text embeddings, plus a per-photo bias when the model ships a query bank.</footer>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const short = (v) => (v ? String(v) : "—");
  const IMAGE_MAX_BYTES = ${LIMITS.imageMaxBytes};
  const TOP_K = 12;
  const isCollection = (v) => String(v).startsWith("collections/");
  /** The score the order follows: a gallery hit's rank_score when Ranking sends one (proto JSON leaves a 0 out), else score. */
  const orderScore = (h) => (typeof h.rank_score === "number" && h.rank_score !== 0 ? h.rank_score : (h.score || 0));

  ${chooseGallery.toString()}

  let demoVersion = "";
  let servingImages = "";
  let collections = new Map();
  let seq = 0;
  let touched = false;
  let waitingFor = "";
  let polls = 0;

  async function call(url, init) {
    const res = await fetch(url, init);
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      const bad = (body.details || []).find((d) => d.type === "google.rpc.BadRequest");
      const fv = bad && bad.debug && bad.debug.field_violations ? bad.debug.field_violations.map((v) => v.field + ": " + v.description).join("; ") : "";
      throw new Error((body.message || res.statusText) + (fv && !String(body.message).includes(fv) ? " — " + fv : ""));
    }
    return body;
  }
  function showError(el, err) { el.textContent = err ? String(err.message || err) : ""; el.style.display = err ? "block" : "none"; }
  function setVersions(model, version, kind) {
    if (model) $("model-version").textContent = "model " + model;
    if (version) $("dataset-version").textContent = (kind || "dataset") + " " + version;
  }
  function selected() { return $("gallery").value; }
  function galleryName(v) {
    const o = [...$("gallery").options].find((x) => x.value === v);
    return o ? o.dataset.name || o.textContent : v;
  }
  function setUrl(params) {
    const u = new URLSearchParams({ gallery: selected() });
    for (const [k, v] of Object.entries(params || {})) if (v) u.set(k, v);
    history.replaceState(null, "", "?" + u.toString());
  }

  /** The bar under a hit: its score within the list's range (scores may be negative: cosine plus a bias). */
  function bar(score, range) {
    const pct = range.hi > range.lo ? 15 + 85 * ((score - range.lo) / (range.hi - range.lo)) : 100;
    return '<div class="bar"><span style="width:' + Math.max(0, Math.min(100, pct)).toFixed(1) + '%"></span></div>';
  }
  function rangeOf(xs) { return { lo: Math.min(...xs), hi: Math.max(...xs) }; }
  function galleryCard(hit, range, withLike) {
    const caps = hit.captions || [];
    const s = orderScore(hit);
    const title = hit.rank_score && hit.rank_score !== hit.score ? ' title="cosine ' + (hit.score || 0).toFixed(3) + ' + query-bank bias"' : "";
    return '<article class="card" data-testid="hit" data-image-id="' + esc(hit.image_id) + '">' +
      '<div class="img"><div class="missing">' + esc(hit.image_id) + '</div>' +
      '<img loading="lazy" src="' + esc(hit.image_url) + '" alt="' + esc(caps[0] || hit.image_id) + '" onerror="this.style.display=\\'none\\'">' +
      '<span class="badge">#' + hit.rank + '</span><span class="score" data-testid="score"' + title + '>' + s.toFixed(3) + '</span></div>' +
      bar(s, range) +
      '<div class="caps">' + (caps.length ? '<p>' + esc(caps[0]) + '</p>' + (caps.length > 1 ? '<details class="more"><summary>' + (caps.length - 1) + ' more captions</summary>' + caps.slice(1).map((c) => '<p>' + esc(c) + '</p>').join("") + '</details>' : "") : '<p class="more">no captions</p>') + '</div>' +
      '<div class="id">' + esc(hit.image_id) + '</div>' +
      (withLike ? '<div class="actions"><button type="button" class="secondary" data-testid="more-like-this" data-image-id="' + esc(hit.image_id) + '" data-image-url="' + esc(hit.image_url) + '" aria-label="More like ' + esc(hit.image_id) + '">More like this</button></div>' : "") +
      '</article>';
  }
  function photoCard(hit, range) {
    const s = hit.score || 0;
    const taken = hit.taken_time ? String(hit.taken_time) : "";
    const name = hit.path || hit.photo_id;
    return '<article class="card" data-testid="hit" data-photo-id="' + esc(hit.photo_id) + '">' +
      '<div class="img"><div class="missing">' + esc(name) + '</div>' +
      '<img loading="lazy" src="' + esc(hit.thumbnail_url) + '" alt="' + esc(name) + '" onerror="this.style.display=\\'none\\'">' +
      '<span class="badge">#' + hit.rank + '</span><span class="score" data-testid="score">' + s.toFixed(3) + '</span></div>' +
      bar(s, range) +
      '<div class="caps"><p class="path" data-testid="hit-path" title="' + esc(name) + '">' + esc(name) + '</p>' +
      '<p class="more">' + (taken ? '<time data-testid="hit-taken" datetime="' + esc(taken) + '" title="' + esc(taken) + '">' + esc(taken.slice(0, 10)) + '</time>' : '<span data-testid="hit-taken">date unknown</span>') +
      ' · <span data-testid="hit-camera">' + esc(hit.camera_model || "no camera") + '</span>' +
      (hit.width && hit.height ? ' · ' + hit.width + '×' + hit.height : "") + '</p></div>' +
      '<div class="actions"><button type="button" class="secondary" data-testid="more-like-this" data-photo-id="' + esc(hit.photo_id) + '" data-path="' + esc(name) + '" aria-label="More like ' + esc(name) + '">More like this</button></div>' +
      '</article>';
  }

  /**
   * Runs one search into the results grid. request() answers { html, count, noun, model, version, kind };
   * only the latest search's answer is shown.
   */
  async function run(request, what, urlParams) {
    const my = ++seq;
    showError($("search-error"), null);
    $("meta").textContent = "Searching…";
    $("results").setAttribute("aria-busy", "true");
    const t0 = performance.now();
    try {
      const out = await request();
      if (my !== seq) return;
      $("results").innerHTML = out.count ? out.html : '<div class="empty">No ' + out.noun + '.</div>';
      setVersions(out.model, out.version, out.kind);
      $("meta").textContent = out.count + " " + out.noun + " " + what + " in " + galleryName(selected()) + " · " + Math.round(performance.now() - t0) + " ms · model " + short(out.model) + " · " + out.kind + " " + short(out.version);
      setUrl(urlParams);
    } catch (err) {
      if (my !== seq) return;
      $("meta").textContent = "";
      showError($("search-error"), err);
    } finally {
      if (my === seq) $("results").removeAttribute("aria-busy");
    }
  }

  async function searchCollection(name, query) {
    const body = await call("/v1/" + name + ":search", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(Object.assign({ top_k: TOP_K }, query)) });
    const hits = body.results || [];
    const range = rangeOf(hits.map((h) => h.score || 0));
    return { html: hits.map((h) => photoCard(h, range)).join(""), count: hits.length, noun: "photos", model: body.model_version, version: body.collection_version, kind: "collection" };
  }
  function galleryAnswer(hits, body) {
    const range = rangeOf(hits.map(orderScore));
    return { html: hits.map((h) => galleryCard(h, range, true)).join(""), count: hits.length, noun: "images", model: body.model_version, version: body.dataset_version, kind: "dataset" };
  }
  /** The dataset version a gallery value searches ("" = what serves). */
  function scopeOf(g) { return g === "demo" ? demoVersion : ""; }

  function clearQueryPhoto() { $("query-photo").hidden = true; }
  function showQueryPhoto(src, text) {
    $("query-photo-img").src = src;
    $("query-photo-text").textContent = text;
    $("query-photo").hidden = false;
  }

  function searchText(q) {
    q = (q || "").trim();
    showError($("search-error"), null);
    if (!q) { showError($("search-error"), new Error("Type a few words first.")); return; }
    clearQueryPhoto();
    const g = selected();
    const what = "for “" + q + "”";
    if (isCollection(g)) return run(() => searchCollection(g, { text: q }), what, { q });
    if (g === "demo") return run(async () => { const b = await call("/demo/search?query=" + encodeURIComponent(q) + "&top_k=" + TOP_K); return galleryAnswer(b.results || [], b); }, what, { q });
    return run(async () => {
      const b = await call("/inference/text-to-image", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: q, top_k: TOP_K }) });
      return galleryAnswer(b.results || [], b);
    }, what, { q });
  }

  function moreLike(btn) {
    const g = selected();
    if (btn.dataset.photoId) {
      const label = btn.dataset.path || btn.dataset.photoId;
      showQueryPhoto(btn.closest("article") ? btn.closest("article").querySelector("img").src : "", "Photos like " + label);
      return run(() => searchCollection(g, { photo_id: btn.dataset.photoId }), "like " + label, { like: btn.dataset.photoId });
    }
    // a gallery has no similar-images-by-id RPC: the hit's own bytes go up as the photo, and the hit leaves its results
    const id = btn.dataset.imageId;
    showQueryPhoto(btn.dataset.imageUrl, "Images like " + id);
    return run(async () => {
      const res = await fetch(btn.dataset.imageUrl);
      if (!res.ok) throw new Error("could not read " + id + " (" + res.status + ")");
      const form = new FormData();
      form.append("file", await res.blob(), id + ".jpg");
      form.append("top_k_captions", "1");
      form.append("top_k_images", String(TOP_K + 1));
      if (scopeOf(g)) form.append("dataset_version", scopeOf(g));
      const b = await call("/inference/upload-image", { method: "POST", body: form });
      const hits = (b.similar_images || []).filter((h) => h.image_id !== id).slice(0, TOP_K).map((h, i) => Object.assign({}, h, { rank: i + 1 }));
      return galleryAnswer(hits, b);
    }, "like " + id, {});
  }

  function readBase64(file) {
    return new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onload = () => resolve(String(r.result).slice(String(r.result).indexOf(",") + 1));
      r.onerror = () => reject(r.error || new Error("could not read " + file.name));
      r.readAsDataURL(file);
    });
  }

  /** A photo chosen or dropped: on a collection, the photos like it; on a gallery, its captions and similar images. */
  async function searchByPhoto(file) {
    if (!file) return;
    const g = selected();
    if (!isCollection(g)) return upload(file);
    showError($("search-error"), null);
    if (file.size > IMAGE_MAX_BYTES) { showError($("search-error"), new Error(file.name + " is larger than ${IMAGE_MAX_MIB} MiB")); return; }
    showQueryPhoto(URL.createObjectURL(file), "Photos like " + file.name);
    let image;
    try { image = await readBase64(file); } catch (err) { showError($("search-error"), err); return; }
    return run(() => searchCollection(g, { image }), "like " + file.name, {});
  }

  async function upload(file) {
    showError($("upload-error"), null);
    if (!file) return;
    $("preview").src = URL.createObjectURL(file);
    $("preview").style.display = "block";
    $("drop-text").textContent = file.name + " · " + Math.round(file.size / 1024) + " KB";
    $("captions").innerHTML = '<li class="tag">Ranking captions…</li>';
    const form = new FormData();
    form.append("file", file);
    form.append("top_k_captions", "5");
    form.append("top_k_images", "6");
    if (scopeOf(selected())) form.append("dataset_version", scopeOf(selected()));
    const t0 = performance.now();
    try {
      const body = await call("/inference/upload-image", { method: "POST", body: form });
      const caps = body.captions || [];
      $("captions").innerHTML = caps.map((c) => '<li data-testid="caption"><span class="s">' + orderScore(c).toFixed(3) + '</span><span>' + esc(c.text) + '</span></li>').join("") || '<li class="tag">No captions.</li>';
      const sim = body.similar_images || [];
      const range = rangeOf(sim.map(orderScore));
      $("similar").innerHTML = sim.map((h) => galleryCard(h, range, false)).join("");
      $("similar-wrap").hidden = sim.length === 0;
      $("upload-meta").textContent = "· " + body.width + "×" + body.height + " in " + Math.round(performance.now() - t0) + " ms";
      setVersions(body.model_version, null);
    } catch (err) {
      $("captions").innerHTML = "";
      showError($("upload-error"), err);
    }
    $("photo-section").scrollIntoView({ block: "nearest" });
  }

  /** Galleries get the captions panel; a collection (no captions) searches by photo into the grid. */
  function updateSections() {
    const g = selected();
    $("photo-section").hidden = isCollection(g);
    $("photo-button").title = isCollection(g) ? "Find the photos of " + galleryName(g) + " that look like a photo" : "See the captions that fit a photo, and similar images";
  }

  async function listCollections() {
    const out = [];
    let token = "";
    for (let page = 0; page < 20; page++) {
      const body = await call("/v1/collections?page_size=100" + (token ? "&page_token=" + encodeURIComponent(token) : ""));
      out.push(...(body.collections || []));
      token = body.next_page_token || "";
      if (!token) break;
    }
    return out;
  }
  function collectionLabel(c) {
    const id = c.name.slice("collections/".length);
    const n = Number((c.counts && c.counts.indexed) || 0);
    const state = String(c.state || "");
    const status = c.serving_version ? "" : state.endsWith("FAILED") ? " (sync failed)" : " (indexing…)";
    return (c.display_name || id) + " · " + n + (n === 1 ? " photo" : " photos") + status;
  }
  function fillCollections(list) {
    collections = new Map(list.map((c) => [c.name, c]));
    const keep = selected();
    let group = $("collections");
    if (list.length === 0) { if (group) group.remove(); return; }
    if (!group) {
      group = document.createElement("optgroup");
      group.id = "collections";
      group.label = "Your collections";
      $("gallery").appendChild(group);
    }
    group.replaceChildren(...list.map((c) => {
      const o = document.createElement("option");
      o.value = c.name;
      o.textContent = collectionLabel(c);
      o.dataset.name = c.display_name || c.name.slice("collections/".length);
      o.disabled = !c.serving_version;
      return o;
    }));
    if ([...$("gallery").options].some((o) => o.value === keep)) $("gallery").value = keep;
  }
  /** While a collection is indexing, look again now and then; a link that named it opens on it once it serves. */
  function pollCollections() {
    if (polls++ > 150 || ![...collections.values()].some((c) => !c.serving_version)) return;
    setTimeout(async () => {
      try { fillCollections(await listCollections()); } catch (err) { /* try again later */ }
      const c = waitingFor && collections.get(waitingFor);
      if (c && c.serving_version && !touched) {
        $("gallery").value = waitingFor;
        waitingFor = "";
        updateSections();
        openFromUrl();
      }
      pollCollections();
    }, 4000);
  }

  function openFromUrl() {
    const params = new URLSearchParams(location.search);
    const g = selected();
    if (isCollection(g) && /^[0-9a-f]{16}$/.test(params.get("like") || "")) {
      const like = params.get("like");
      showQueryPhoto("/v1/" + g + "/photos/" + like + "/thumbnail", "Photos like " + like);
      run(() => searchCollection(g, { photo_id: like }), "like " + like, { like });
    } else if (params.get("q")) {
      $("query").value = params.get("q");
      searchText(params.get("q"));
    } else setUrl({});
  }

  async function init() {
    const params = new URLSearchParams(location.search);
    const colsP = listCollections().catch(() => []);
    const queriesP = call("/demo/queries").catch(() => ({}));
    let servingVersion = "";
    try {
      const st = await call("/model/status");
      const state = String(st.state || "").replace(${JSON.stringify(STATE_PREFIX)}, "").toLowerCase();
      $("state").textContent = state || "unknown";
      $("state").className = "pill " + (state === ${JSON.stringify(SERVING)} ? "state-ok" : "state-bad");
      setVersions(st.serving_version, st.index && st.index.dataset_version);
      if (st.last_error) $("state").title = st.last_error;
      servingVersion = (st.index && st.index.dataset_version) || "";
      servingImages = (st.index && st.index.images) || "";
    } catch (err) {
      $("state").textContent = "ranking unavailable";
      $("state").className = "pill state-bad";
    }
    // Is the gallery that serves the demo? /model/status names its dataset version only; the demo's comes with a demo search.
    if (servingVersion) demoVersion = await call("/demo/search?query=photo&top_k=1").then((b) => b.dataset_version || "", () => "");
    const cols = await colsP;
    const choice = chooseGallery({ requested: params.get("gallery"), servingVersion, demoVersion, collections: cols.map((c) => ({ value: c.name, searchable: !!c.serving_version })) });
    if (choice.listServing) {
      const o = document.createElement("option");
      o.value = "serving";
      o.textContent = "Serving gallery (" + (servingImages || "?") + " images)";
      o.dataset.name = "the serving gallery";
      o.dataset.version = servingVersion;
      $("galleries").appendChild(o);
    } else if (servingVersion && servingImages) {
      $("gallery").options[0].textContent = "Demo gallery (" + servingImages + " images)";
    }
    $("gallery").options[0].dataset.name = "the demo gallery";
    fillCollections(cols);
    $("gallery").value = choice.selected;
    updateSections();
    if (choice.unavailable) {
      const c = collections.get(choice.unavailable);
      if (c) waitingFor = choice.unavailable;
      showError($("search-error"), new Error((c ? galleryName(choice.unavailable) + " cannot be searched yet (" + (c.state && String(c.state).endsWith("FAILED") ? "its sync failed" : "still indexing") + ")" : "no gallery “" + choice.unavailable + "”") + "; showing " + galleryName(choice.selected) + "."));
    }
    pollCollections();
    const q = await queriesP;
    $("chips").innerHTML = (q.queries || []).map((s) => '<button type="button" class="chip">' + esc(s) + "</button>").join("");
    for (const b of $("chips").querySelectorAll(".chip")) b.addEventListener("click", () => { $("query").value = b.textContent; searchText(b.textContent); });
    $("gallery").dataset.ready = "true";
    if (!choice.unavailable) openFromUrl();
  }

  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); searchText($("query").value); });
  $("gallery").addEventListener("change", () => {
    touched = true;
    waitingFor = "";
    updateSections();
    clearQueryPhoto();
    const q = $("query").value.trim();
    if (q) searchText(q);
    else { seq++; $("results").innerHTML = ""; $("meta").textContent = ""; showError($("search-error"), null); setUrl({}); }
  });
  $("results").addEventListener("click", (e) => {
    const b = e.target.closest("[data-testid=more-like-this]");
    if (b) moreLike(b);
  });
  $("photo-button").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", (e) => { const f = e.target.files[0]; e.target.value = ""; searchByPhoto(f); });
  $("drop").addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
  // A photo dropped anywhere on the page searches by it (the drop zone too).
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && [...(e.dataTransfer.types || [])].includes("Files");
  document.addEventListener("dragenter", (e) => { if (!hasFiles(e)) return; e.preventDefault(); depth++; document.body.classList.add("dragging"); $("drop").classList.add("over"); });
  document.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
  document.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (depth === 0) { document.body.classList.remove("dragging"); $("drop").classList.remove("over"); } });
  document.addEventListener("drop", (e) => {
    depth = 0;
    document.body.classList.remove("dragging");
    $("drop").classList.remove("over");
    if (!e.dataTransfer || !e.dataTransfer.files || !e.dataTransfer.files.length) return;
    e.preventDefault();
    searchByPhoto(e.dataTransfer.files[0]);
  });
  init();
})();
</script>
</body>
</html>
`;
