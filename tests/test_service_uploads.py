"""Upload security: hostile names stay inside the folder, size and content checks answer clearly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from service_fakes import NC_FILE, Env, bearer

from voterolls.service.uploads import UploadRejected, check_text, safe_filename

SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path, max_upload_bytes=4096)


def _empty_uploads(env: Env) -> bool:
    folder = env.w / "service" / "uploads" / "NC"
    return not folder.exists() or not any(folder.iterdir())


def _all_files(root: Path) -> set[Path]:
    return {p.resolve() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "name",
    [
        "../../evil.txt",
        "..\\..\\evil.txt",
        "/etc/passwd",
        "C:\\Windows\\evil.txt",
        "....//....//evil.txt",
        "..",
        "",
        ".hidden",
        "voters ñ é 北京.txt",
        "a" * 400 + ".txt",
        "CON",
        "name\r\nX-Injected: 1.txt",
        "%2e%2e%2fevil.txt",
    ],
)
def test_hostile_file_names_stay_inside_the_submission_folder(env: Env, tmp_path: Path, name: str) -> None:
    before = _all_files(tmp_path)
    r = env.upload("NC", NC_FILE, name=name)
    assert r.status_code == 202, r.text
    body = r.json()
    env.wait(body["submission"])
    stored = body["files"][0]["name"]
    assert SAFE.match(stored) and len(stored) <= 100 and ".." not in stored.strip(".")
    folder = (env.w / "service" / "uploads" / "NC" / body["submission"]).resolve()
    new = _all_files(tmp_path) - before
    assert new and all(p.is_relative_to(folder) or p.name in ("audit.log", "audit.head") for p in new), new
    assert not any(p.name == "evil.txt" and not p.is_relative_to(folder) for p in _all_files(tmp_path))


def test_raw_body_upload_with_hostile_header_name(env: Env) -> None:
    r = env.client.post("/api/states/NC/submissions?filename=../../x.txt",
                        headers={**bearer(env.tokens["nc-upload"]), "X-Filename": "../../../../tmp/pwn.txt"},
                        content=NC_FILE)
    assert r.status_code == 202 and r.json()["files"][0]["name"] == "pwn.txt"
    env.wait(r.json()["submission"])


def test_two_files_with_the_same_name_are_both_kept(env: Env) -> None:
    files = [("files", ("a.txt", NC_FILE, "text/plain")), ("files", ("sub/a.txt", NC_FILE + b"4\tD\n", "text/plain"))]
    r = env.client.post("/api/states/NC/submissions", headers=bearer(env.tokens["nc-upload"]), files=files)
    assert r.status_code == 202
    assert [f["name"] for f in r.json()["files"]] == ["a.txt", "a-2.txt"]
    env.wait(r.json()["submission"])
    assert env.ingest.calls[-1] == ("NC", ["a.txt", "a-2.txt"])


def test_oversized_upload_is_413_and_leaves_nothing(env: Env) -> None:
    big = NC_FILE + b"9\tZ\n" * 2000
    r = env.upload("NC", big)
    assert r.status_code == 413
    assert "larger than this service accepts (4 KiB)" in r.json()["error"] and "several submissions" in r.json()["error"] and "Split the file" not in r.json()["error"]
    assert _empty_uploads(env)
    assert env.ingest.calls == []


def test_oversized_stream_without_length_is_cut_off(env: Env) -> None:
    def chunks():
        yield NC_FILE
        for _ in range(100):
            yield b"9\tZ\n" * 50

    r = env.client.post("/api/states/NC/submissions", headers={**bearer(env.tokens["nc-upload"]), "X-Filename": "big.txt"},
                        content=chunks())
    assert r.status_code == 413
    assert _empty_uploads(env)


def test_large_upload_is_streamed_intact(tmp_path: Path) -> None:
    import hashlib

    env = Env(tmp_path, max_upload_bytes=64 * 1024 * 1024)
    body = NC_FILE + b"".join(f"{i}\tNAME{i}\n".encode() for i in range(400_000))
    r = env.upload("NC", body)
    assert r.status_code == 202
    f = r.json()["files"][0]
    assert f["size"] == len(body) and f["sha256"] == hashlib.sha256(body).hexdigest()
    env.wait(r.json()["submission"])
    assert env.svc.jobs.get("NC", r.json()["submission"])["result"]["rows_read"] == 400_003


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        (b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)) * 8, 415, "binary file"),
        (b"FORMAT=nc_ncvoter_2022\nid\tname\n1\t\x00\x00\x00", 415, "binary file"),
        (b"PK\x03\x04" + b"x" * 100, 422, "ZIP archive, but it cannot be read"),
        (b"\x1f\x8b\x08" + b"x" * 100, 422, "gzip file, but it cannot be read"),
        (b"BZh91AY&SY" + b"x" * 100, 415, "bzip2"),
        (b"", 422, "empty"),
        (b"hello, this is no voter file\n", 422, "could not recognise"),
        (b"FORMAT=oh_swvf\nid\n1\n", 422, "the layout is OH's (oh_swvf), not NC's"),
    ],
)
def test_content_checks(env: Env, payload: bytes, status: int, words: str) -> None:
    r = env.upload("NC", payload, name="upload.txt")
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert _empty_uploads(env)


def test_utf16_with_bom_is_text(env: Env) -> None:
    body = "\ufeffid\tname\n1\tA\n".encode("utf-16-le")
    r = env.upload("NC", body)
    assert r.status_code == 202, r.text
    env.wait(r.json()["submission"])


def test_check_text_allows_bomless_utf16_and_rejects_sparse_nuls() -> None:
    check_text("id\tname\n1\tA\n".encode("utf-16-le"), "f.txt")
    check_text("id\tname\n1\tA\n".encode("utf-16-be"), "f.txt")
    with pytest.raises(UploadRejected) as e:
        check_text(b"id,name\n1,A\x00B\n", "f.txt")
    assert e.value.status == 415 and e.value.message.startswith("f.txt: this looks like a binary file")


def test_no_file_chosen(env: Env) -> None:
    r = env.client.post("/api/states/NC/submissions", headers=bearer(env.tokens["nc-upload"]),
                        files={"files": ("", b"", "application/octet-stream")})
    assert r.status_code == 400 and "no file" in r.json()["error"]


def test_malformed_multipart_is_400(env: Env) -> None:
    r = env.client.post("/api/states/NC/submissions",
                        headers={**bearer(env.tokens["nc-upload"]), "Content-Type": "multipart/form-data; boundary=xyz"},
                        content=b"--xyz\r\ngarbage without headers end")
    assert r.status_code in (400, 422)
    assert _empty_uploads(env)


def test_safe_filename_units() -> None:
    taken: set[str] = set()
    assert safe_filename("../../etc/passwd", taken) == "passwd"
    assert safe_filename("passwd", taken) == "passwd-2"
    assert safe_filename("..", set()) == "upload.txt"
    assert safe_filename("ncvoter_Statewide.txt", set()) == "ncvoter_Statewide.txt"
    assert safe_filename("x" * 300 + ".txt", set()).endswith(".txt")
    assert len(safe_filename("x" * 300 + ".txt", set())) <= 100


class _StreamingRequest:
    """Just enough of a Starlette request for ``receive``: headers, query and a body stream."""

    def __init__(self, headers: dict[str, str], chunks) -> None:
        self.headers = headers
        self.query_params: dict[str, str] = {}
        self._chunks = chunks

    async def stream(self):
        for c in self._chunks:
            yield c


@pytest.mark.parametrize("multipart", [False, True])
def test_upload_is_streamed_not_held_in_memory(tmp_path: Path, multipart: bool) -> None:
    """40 MiB through ``receive`` with a peak of Python allocations far below the body size."""
    import asyncio
    import tracemalloc

    from voterolls.service.uploads import receive

    chunk = b"1\tNAME\t2024-01-01\n" * 3641  # ~64 KiB of text
    n = 640
    if multipart:
        head = (b"--BOUND\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.txt\"\r\n"
                b"Content-Type: text/plain\r\n\r\n")
        chunks = [head, *([chunk] * n), b"\r\n--BOUND--\r\n"]
        headers = {"content-type": "multipart/form-data; boundary=BOUND"}
    else:
        chunks = [chunk] * n
        headers = {"content-type": "application/octet-stream", "x-filename": "big.txt"}
    tracemalloc.start()
    try:
        got = asyncio.run(receive(_StreamingRequest(headers, chunks), tmp_path / "sub", 1 << 30))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.files[0].size == len(chunk) * n > 40 * 1024 * 1024
    assert (tmp_path / "sub" / "big.txt").stat().st_size == got.files[0].size
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes: the body was buffered"


def test_uploader_may_name_the_format_but_not_another_states(env: Env) -> None:
    pytest.importorskip("voterolls.formats", reason="voterolls.formats is not built yet")
    url = "/api/states/NC/submissions?format="
    r = env.client.post(url + "nc_ncvoter_2022", headers=bearer(env.tokens["nc-upload"]),
                        files={"files": ("x.txt", b"no marker line\n1\n", "text/plain")})
    assert r.status_code == 202 and r.json()["format"] == "nc_ncvoter_2022"
    env.wait(r.json()["submission"])
    r = env.client.post(url + "oh_swvf", headers=bearer(env.tokens["nc-upload"]),
                        files={"files": ("x.txt", b"1\n", "text/plain")})
    assert r.status_code == 422 and "your account uploads for NC" in r.json()["error"]
    r = env.client.post(url + "nonsense", headers=bearer(env.tokens["nc-upload"]),
                        files={"files": ("x.txt", b"1\n", "text/plain")})
    assert r.status_code == 422 and "unknown format" in r.json()["error"]


def test_detection_errors_do_not_reveal_server_paths(env: Env) -> None:
    r = env.upload("NC", b"nothing recognisable\n", name="mystery.txt")
    assert r.status_code == 422
    assert str(env.w) not in r.json()["error"] and "mystery.txt" in r.json()["error"]
