"""open_store: choosing a backend by URL scheme, lazily."""

from __future__ import annotations

import sys

import pytest

from ebas.errors import UsageError
from ebas.storage import open_store
from ebas.storage.backends.file import FileStore
from ebas.storage.backends.memory import MemoryStore
from ebas.storage.registry import BACKENDS, backend_class, register_backend, scheme_of


@pytest.fixture
def registry():
    saved = dict(BACKENDS)
    yield BACKENDS
    BACKENDS.clear()
    BACKENDS.update(saved)


def test_file_urls_and_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url, root in [(tmp_path.as_uri(), str(tmp_path)), (str(tmp_path), str(tmp_path)),
                      ("relative/repo", str(tmp_path / "relative" / "repo")),
                      (tmp_path / "p", str(tmp_path / "p")), ("FILE:///srv/x", "/srv/x")]:
        store = open_store(url)
        assert isinstance(store, FileStore) and store.root == root


def test_options_reach_the_backend(tmp_path):
    assert open_store(str(tmp_path), fsync=False)._fsync is False


def test_memory(memory_name):
    open_store(f"memory://{memory_name}").put("x", b"1")
    store = open_store(f"memory://{memory_name}")
    assert isinstance(store, MemoryStore) and store.get("x") == b"1"


def test_unknown_scheme_names_supported_ones():
    with pytest.raises(UsageError) as info:
        open_store("nope://bucket/prefix")
    assert "file://" in info.value.message and "memory://" in info.value.message


@pytest.mark.parametrize("url", ["", None, 42])
def test_invalid_urls(url):
    with pytest.raises(UsageError):
        open_store(url)  # type: ignore[arg-type]


def test_scheme_of():
    assert scheme_of("/abs") == "file" and scheme_of("rel") == "file"
    assert scheme_of("S3://b/p") == "s3"


def test_backends_are_imported_lazily(registry, tmp_path, monkeypatch):
    (tmp_path / "ebas_fake_backend.py").write_text(
        "from ebas.storage.backends.memory import MemoryStore\n"
        "class FakeStore(MemoryStore):\n"
        "    @classmethod\n"
        "    def from_url(cls, url, **options):\n"
        "        store = cls(**options)\n"
        "        store.url = url\n"
        "        return store\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    register_backend("Fake", "ebas_fake_backend:FakeStore")
    assert "ebas_fake_backend" not in sys.modules
    store = open_store("fake://bucket/x")
    assert type(store).__name__ == "FakeStore" and store.url == "fake://bucket/x"
    assert "ebas_fake_backend" in sys.modules
    monkeypatch.delitem(sys.modules, "ebas_fake_backend")


def test_missing_backend_module(registry):
    register_backend("ghost", "ebas_no_such_module_xyz:Store")
    with pytest.raises(UsageError, match="not available") as info:
        backend_class("ghost")
    assert "install" in info.value.hint


def test_register_backend_validates_target(registry):
    with pytest.raises(UsageError):
        register_backend("bad", "no-colon-here")
