"""The Python client against a real mesh (conftest.py): searches, an upload, a watch stream, a
refused request's field violations and an auth failure, over native gRPC through the gateway."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import pytest

from glimpse import FieldViolation, Glimpse, GlimpseError

from conftest import READ_KEY, ROOT, WRITE_KEY

DEMO = ROOT / "demo" / "images"


def test_search_images_returns_ranked_gallery_hits(mesh: str) -> None:
    with Glimpse(mesh) as g:
        hits = g.search_images("a dog running on the grass", top_k=5)
    assert len(hits) == 5
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(h.image_id for h in hits)
    assert [h.rank_score for h in hits] == sorted((h.rank_score for h in hits), reverse=True)  # the score the order follows


def test_search_captions_for_an_upload_a_path_and_an_id(mesh: str) -> None:
    photo = sorted(DEMO.iterdir())[0]
    with Glimpse(mesh) as g:
        by_bytes = g.search_captions(photo.read_bytes(), top_k=3)
        by_path = g.search_captions(photo, top_k=3)
        by_id = g.search_captions(photo.stem, top_k=3)
    assert len(by_bytes) == 3 and all(c.text for c in by_bytes)
    assert [c.text for c in by_path] == [c.text for c in by_bytes]
    assert by_id[0].text  # the gallery's own copy: its captions rank first
    assert {c.image_id for c in by_id[:1]} == {photo.stem}


def test_a_refused_request_carries_its_field_violations(mesh: str) -> None:
    with Glimpse(mesh) as g, pytest.raises(GlimpseError) as err:
        g.search_images("", top_k=500)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {(v.field, v.reason) for v in err.value.violations} == {("query", "REQUIRED"), ("top_k", "OUT_OF_RANGE")}
    assert all(isinstance(v, FieldViolation) and v.description for v in err.value.violations)


def test_writes_need_a_write_key(mesh: str) -> None:
    with Glimpse(mesh) as anonymous, pytest.raises(GlimpseError) as err:
        anonymous.create_collection("nokey", uploads=True)
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    with Glimpse(mesh, api_key=READ_KEY) as reader, pytest.raises(GlimpseError) as err:
        reader.create_collection("readkey", uploads=True)
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
    with Glimpse(mesh, api_key="not-a-key") as wrong, pytest.raises(GlimpseError) as err:
        wrong.create_collection("wrongkey", uploads=True)
    assert err.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_a_folder_collection_synced_while_watched_then_searched(mesh: str, tmp_path: Path) -> None:
    folder = tmp_path / "holiday"
    folder.mkdir()
    photos = sorted(DEMO.iterdir())[:6]
    for p in photos:
        shutil.copy(p, folder / p.name)
    (folder / "notes.txt").write_text("not a photo")
    with Glimpse(mesh, api_key=WRITE_KEY) as g:
        created = g.create_collection("holiday", folder=str(folder))
        assert created.name == "collections/holiday"
        states = [m.collection for m in g.watch_collection("holiday", timeout=120)]
        assert states, "the watch stream sent nothing"
        final = g.get_collection("holiday")
        assert final.counts.indexed == len(photos)
        assert final.counts.skipped == 1
        assert "holiday" in [c.name.split("/")[-1] for c in g.list_collections()]
        # Search serves a version once Ranking has embedded it (serving_version follows version).
        for _ in range(300):
            if g.get_collection("holiday").serving_version == final.version:
                break
            time.sleep(0.2)
        hits = g.search_collection("holiday", "a photo", top_k=3)
        assert 0 < len(hits) <= 3
        g.delete_collection("holiday")
        with pytest.raises(GlimpseError) as err:
            g.get_collection("holiday")
        assert err.value.code == grpc.StatusCode.NOT_FOUND


def test_models_and_runs_list_through_pages(mesh: str) -> None:
    with Glimpse(mesh) as g:
        serving = g.model_info().version
        assert serving
        assert serving in [m.version for m in g.list_models()]
        assert list(g.list_training_runs()) == []


def test_the_readme_example_runs_as_written(mesh: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("GLIMPSE_URL", mesh)
    exec(compile(example, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(len(line.split()) == 3 for line in lines)


def test_training_runs_by_name(mesh: str) -> None:
    with Glimpse(mesh, api_key=WRITE_KEY) as g:
        with pytest.raises(GlimpseError) as err:
            g.start_training(epochs=501)
        assert [(v.field, v.reason) for v in err.value.violations] == [("training_run.config.epochs", "OUT_OF_RANGE")]
        # The demo pack is not a published dataset: nothing to train on, said so.
        with pytest.raises(GlimpseError) as err:
            g.start_training(epochs=1)
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(GlimpseError) as err:
            g.get_training_run("tr-00000000000000000-000000")
        assert err.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(GlimpseError) as err:
            g.cancel_training_run("trainingRuns/not a run")
        assert [(v.field, v.reason) for v in err.value.violations] == [("name", "BAD_FORMAT")]


def test_unary_calls_have_a_deadline_by_default() -> None:
    # A server that accepts the connection and never answers: the service config's deadline ends the call.
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        with Glimpse(f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.5) as g, pytest.raises(GlimpseError) as err:
            g.search_images("a dog")
        assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        silent.close()


def test_pipeline_runs_by_name(mesh: str) -> None:
    with Glimpse(mesh, api_key=WRITE_KEY) as g:
        with pytest.raises(GlimpseError) as err:
            g.start_pipeline_run(sample_ratio=2)
        assert [(v.field, v.reason) for v in err.value.violations] == [("pipeline_run.params.sample_ratio", "OUT_OF_RANGE")]
        # A source outside the allow-list is refused before anything is downloaded, naming its field.
        with pytest.raises(GlimpseError) as err:
            g.start_pipeline_run(images_url="file:///etc/passwd")
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert "pipeline_run.params.images_url" in [v.field for v in err.value.violations]
        with pytest.raises(GlimpseError) as err:
            g.get_pipeline_run("pr-nope")
        assert err.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(GlimpseError) as err:
            g.cancel_pipeline_run("pipelineRuns/not a run")
        assert [(v.field, v.reason) for v in err.value.violations] == [("name", "BAD_FORMAT")]
        assert list(g.list_pipeline_runs()) == []


def test_version_is_the_api_release_and_named_in_the_user_agent() -> None:
    from concurrent import futures
    from importlib.metadata import version

    import glimpse

    release = (ROOT / "proto" / "VERSION").read_text().strip()
    assert glimpse.__version__ == release == version("glimpse-client")
    # A server that records each call's User-Agent and refuses it.
    seen: list[str] = []

    def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append(dict(context.invocation_metadata()).get("user-agent", ""))
        context.abort(grpc.StatusCode.UNAVAILABLE, "no")

    class Any(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(refuse)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[Any()])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with Glimpse(f"127.0.0.1:{port}", retries=0) as g, pytest.raises(GlimpseError):
            g.search_images("a dog")
    finally:
        server.stop(None)
    assert len(seen) == 1 and seen[0].startswith(f"glimpse-python/{release} ")
