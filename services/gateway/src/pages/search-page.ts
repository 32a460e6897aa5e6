/**
 * The search page: one self-contained HTML document (inline CSS and JS, no build step, no
 * third-party requests). It calls the gateway's REST paths: /demo/search (or
 * /inference/text-to-image for the serving gallery), /inference/upload-image,
 * /demo/queries and /model/status.
 */
import { ranking } from "@glimpse/api";

/** /model/status's state as the page shows it: the generated enum's names without their prefix, in lower case ("serving"). */
const serving = ranking.ModelStateSchema.value[ranking.ModelState.SERVING]!;
const STATE_PREFIX = serving.name.slice(0, serving.name.length - serving.localName.length);
const SERVING = serving.localName.toLowerCase();

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
  main { padding:24px 0 48px; }
  .panel { background:var(--card); border:1px solid var(--line); border-radius:14px; padding:18px; box-shadow:0 1px 2px rgba(16,24,40,.04); }
  .searchrow { display:flex; gap:10px; flex-wrap:wrap; }
  .searchrow input[type=search] { flex:1 1 380px; font-size:17px; padding:12px 14px; border:1px solid #cfd4dc; border-radius:10px; outline:none; }
  .searchrow input[type=search]:focus { border-color:var(--accent); box-shadow:0 0 0 3px var(--accent-soft); }
  button, .btn { font:inherit; font-weight:600; border:0; border-radius:10px; padding:12px 18px; background:var(--accent); color:#fff; cursor:pointer; }
  button.secondary, .btn.secondary { background:#fff; color:var(--ink); border:1px solid #cfd4dc; }
  select { font:inherit; padding:11px 10px; border:1px solid #cfd4dc; border-radius:10px; background:#fff; }
  .chips { display:flex; gap:8px; flex-wrap:wrap; margin-top:12px; }
  .chip { font-size:13px; border:1px solid var(--line); background:#fff; color:var(--ink); border-radius:999px; padding:6px 12px; cursor:pointer; font-weight:500; }
  .chip:hover { border-color:var(--accent); color:var(--accent); }
  .meta { color:var(--muted); font-size:13px; margin:16px 2px 10px; min-height:18px; }
  .error { color:var(--bad); background:#fde8e6; border-radius:10px; padding:10px 12px; margin-top:12px; display:none; }
  .grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(210px,1fr)); gap:16px; }
  .card { background:var(--card); border:1px solid var(--line); border-radius:12px; overflow:hidden; display:flex; flex-direction:column; box-shadow:0 1px 2px rgba(16,24,40,.05); }
  .card .img { position:relative; aspect-ratio:1/1; background:#eef0f3; }
  .card img { position:absolute; inset:0; z-index:1; width:100%; height:100%; object-fit:cover; display:block; }
  .card .missing { position:absolute; inset:0; display:flex; align-items:center; justify-content:center; color:var(--muted); font-size:12px; padding:8px; text-align:center; }
  .badge { z-index:2; position:absolute; top:8px; left:8px; background:rgba(17,24,39,.78); color:#fff; font-size:12px; font-weight:600; border-radius:999px; padding:3px 9px; }
  .score { z-index:2; position:absolute; top:8px; right:8px; background:#fff; color:var(--ink); font:12px ui-monospace,Menlo,monospace; border-radius:999px; padding:3px 8px; box-shadow:0 1px 3px rgba(0,0,0,.15); }
  .bar { height:4px; background:#eef0f3; } .bar span { display:block; height:100%; background:linear-gradient(90deg,#3358d4,#12a4d4); }
  .card .caps { padding:10px 12px 12px; font-size:13px; color:#344054; }
  .card .caps p { margin:0 0 4px; } .card .caps .more { color:var(--muted); font-size:12px; }
  .card .id { font:11px ui-monospace,Menlo,monospace; color:var(--muted); padding:0 12px 10px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
  h2 { font-size:16px; margin:0 0 12px; }
  .two { display:grid; grid-template-columns:minmax(260px,340px) 1fr; gap:20px; margin-top:28px; }
  @media (max-width:820px){ .two { grid-template-columns:1fr; } }
  .drop { display:block; border:2px dashed #cfd4dc; border-radius:12px; padding:18px; text-align:center; color:var(--muted); cursor:pointer; }
  .drop.over { border-color:var(--accent); background:var(--accent-soft); }
  .drop img { max-width:100%; max-height:260px; border-radius:8px; margin:12px auto 0; display:none; }
  ol.captions { margin:0; padding:0; list-style:none; }
  ol.captions li { display:flex; gap:10px; align-items:baseline; padding:9px 0; border-bottom:1px solid var(--line); }
  ol.captions li:last-child { border-bottom:0; }
  ol.captions .s { font:12px ui-monospace,Menlo,monospace; color:var(--accent); min-width:48px; }
  .similar { margin-top:16px; } .similar .grid { grid-template-columns:repeat(auto-fill,minmax(120px,1fr)); gap:10px; }
  .similar .card .caps, .similar .card .id { display:none; }
  footer { color:var(--muted); font-size:12px; padding:0 0 32px; }
  .empty { color:var(--muted); padding:28px; text-align:center; border:1px dashed var(--line); border-radius:12px; }
</style>
</head>
<body>
<header><div class="wrap top">
  <div class="brand"><span class="dot"></span>Glimpse</div>
  <div class="tag">type a sentence, get the photos — upload a photo, get the captions</div>
  <div class="versions">
    <span class="pill" id="state" data-testid="state">model …</span>
    <span class="pill" id="model-version" data-testid="model-version" title="model version">model —</span>
    <span class="pill" id="dataset-version" data-testid="dataset-version" title="dataset version of the gallery searched">dataset —</span>
  </div>
</div></header>
<main class="wrap">
  <section class="panel">
    <form id="search-form" class="searchrow" autocomplete="off">
      <input type="search" id="query" name="query" placeholder="Describe a photo, e.g. “a dog running through the snow”" maxlength="512" data-testid="query" autofocus>
      <select id="gallery" title="gallery" data-testid="gallery"><option value="demo">Demo gallery</option></select>
      <button type="submit" data-testid="search">Search</button>
    </form>
    <div class="chips" id="chips"></div>
    <div class="error" id="search-error" role="alert"></div>
  </section>
  <div class="meta" id="meta" data-testid="meta"></div>
  <section id="results" class="grid" data-testid="results"></section>

  <section class="two">
    <div class="panel">
      <h2>Image → captions</h2>
      <label class="drop" id="drop" data-testid="drop">
        <div id="drop-text">Drop a JPEG, PNG or WebP here, or click to choose one</div>
        <input type="file" id="file" accept="image/jpeg,image/png,image/webp" hidden data-testid="upload">
        <img id="preview" alt="uploaded image">
      </label>
      <div class="error" id="upload-error" role="alert"></div>
    </div>
    <div class="panel">
      <h2>Captions that fit <span class="tag" id="upload-meta"></span></h2>
      <ol class="captions" id="captions" data-testid="captions"><li class="tag">Upload a photo to see the captions that describe it best.</li></ol>
      <div class="similar" id="similar-wrap" hidden><h2>Similar photos</h2><div class="grid" id="similar"></div></div>
    </div>
  </section>
</main>
<footer class="wrap" id="footer">Photos: Flickr8K (Hodosh, Young &amp; Hockenmaier, 2013), Flickr images for research use. Scores are cosine similarities of the model's image and text embeddings.</footer>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const short = (v) => (v ? String(v) : "—");
  let demoVersion = "";

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
  function setVersions(model, dataset) {
    if (model) $("model-version").textContent = "model " + model;
    if (dataset) $("dataset-version").textContent = "dataset " + dataset;
  }

  function card(hit, maxScore) {
    const caps = hit.captions || [];
    const pct = Math.max(0, Math.min(100, (hit.score / (maxScore || 1)) * 100));
    return '<article class="card" data-testid="hit" data-image-id="' + esc(hit.image_id) + '">' +
      '<div class="img"><div class="missing">' + esc(hit.image_id) + '</div>' +
      '<img loading="lazy" src="' + esc(hit.image_url) + '" alt="' + esc(caps[0] || hit.image_id) + '" onerror="this.style.display=\\'none\\'">' +
      '<span class="badge">#' + hit.rank + '</span><span class="score" data-testid="score">' + hit.score.toFixed(3) + '</span></div>' +
      '<div class="bar"><span style="width:' + pct.toFixed(1) + '%"></span></div>' +
      '<div class="caps">' + (caps.length ? '<p>' + esc(caps[0]) + '</p>' + (caps.length > 1 ? '<details class="more"><summary>' + (caps.length - 1) + ' more captions</summary>' + caps.slice(1).map((c) => '<p>' + esc(c) + '</p>').join("") + '</details>' : "") : '<p class="more">no captions</p>') + '</div>' +
      '<div class="id">' + esc(hit.image_id) + '</div></article>';
  }

  async function search(q) {
    q = (q || "").trim();
    showError($("search-error"), null);
    if (!q) { showError($("search-error"), new Error("Type a few words first.")); return; }
    const gallery = $("gallery").value;
    const t0 = performance.now();
    $("meta").textContent = "Searching…";
    try {
      const body = gallery === "demo"
        ? await call("/demo/search?query=" + encodeURIComponent(q) + "&top_k=12")
        : await call("/inference/text-to-image", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: q, top_k: 12 }) });
      const hits = body.results || [];
      const max = hits.length ? hits[0].score : 1;
      $("results").innerHTML = hits.length ? hits.map((h) => card(h, max)).join("") : '<div class="empty">No images.</div>';
      setVersions(body.model_version, body.dataset_version);
      $("meta").textContent = hits.length + " images for “" + q + "” in " + Math.round(performance.now() - t0) + " ms · model " + short(body.model_version) + " · dataset " + short(body.dataset_version);
      history.replaceState(null, "", "?q=" + encodeURIComponent(q) + (gallery === "demo" ? "" : "&gallery=" + gallery));
    } catch (err) {
      $("meta").textContent = "";
      showError($("search-error"), err);
    }
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
    const t0 = performance.now();
    try {
      const body = await call("/inference/upload-image", { method: "POST", body: form });
      const caps = body.captions || [];
      $("captions").innerHTML = caps.map((c) => '<li data-testid="caption"><span class="s">' + c.score.toFixed(3) + '</span><span>' + esc(c.text) + '</span></li>').join("") || '<li class="tag">No captions.</li>';
      const sim = body.similar_images || [];
      $("similar").innerHTML = sim.map((h) => card(h, sim[0].score)).join("");
      $("similar-wrap").hidden = sim.length === 0;
      $("upload-meta").textContent = "· " + body.width + "×" + body.height + " in " + Math.round(performance.now() - t0) + " ms";
      setVersions(body.model_version, null);
    } catch (err) {
      $("captions").innerHTML = "";
      showError($("upload-error"), err);
    }
  }

  async function init() {
    try {
      const st = await call("/model/status");
      const state = String(st.state || "").replace(${JSON.stringify(STATE_PREFIX)}, "").toLowerCase();
      $("state").textContent = state || "unknown";
      $("state").className = "pill " + (state === ${JSON.stringify(SERVING)} ? "state-ok" : "state-bad");
      setVersions(st.serving_version, st.index && st.index.dataset_version);
      if (st.last_error) $("state").title = st.last_error;
      if (st.index && st.index.dataset_version) {
        const o = document.createElement("option");
        o.value = "serving";
        o.textContent = "Serving gallery (" + (st.index.images || "?") + " images)";
        o.dataset.version = st.index.dataset_version;
        $("gallery").appendChild(o);
      }
    } catch (err) {
      $("state").textContent = "ranking unavailable";
      $("state").className = "pill state-bad";
    }
    try {
      const q = await call("/demo/queries");
      $("chips").innerHTML = (q.queries || []).map((s) => '<button type="button" class="chip">' + esc(s) + "</button>").join("");
      for (const b of $("chips").querySelectorAll(".chip")) b.addEventListener("click", () => { $("query").value = b.textContent; search(b.textContent); });
    } catch (err) { /* queries are optional */ }
    const params = new URLSearchParams(location.search);
    if (params.get("gallery") === "serving") $("gallery").value = "serving";
    if (params.get("q")) { $("query").value = params.get("q"); search(params.get("q")); }
  }

  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search($("query").value); });
  $("file").addEventListener("change", (e) => upload(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload(e.dataTransfer.files[0]); });
  init();
})();
</script>
</body>
</html>
`;
