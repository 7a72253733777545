"""`iacseg train` refuses unusable requests with one clear line before any work starts."""

import pytest

from iacseg.cli.main import main


@pytest.mark.parametrize("args, words", [
    (["train", "segmenter", "-o", "M"], "either --data"),
    (["train", "segmenter", "--data", "D", "--phantoms", "4", "-o", "M"], "either --data"),
    (["train", "segmenter", "--phantoms", "1", "-o", "M"], "at least 2"),
    (["train", "landmarks", "--phantoms", "4", "--init", "unet-demo", "-o", "M"], "is a segmenter model"),
    (["train", "landmarks", "--phantoms", "4", "--patch", "8", "16", "16", "-o", "M"], "segmenter options"),
    (["train", "segmenter", "--phantoms", "4", "--from-store", "S", "-o", "M"], "either --data"),
    (["train", "segmenter", "--data", "/no/such/folder", "-o", "M"], "does not exist"),
    (["train", "segmenter", "--phantoms", "4", "--init", "/no/such/model", "-o", "M"], "no segmenter model"),
])
def test_train_refuses_bad_requests(args, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "M").exists()
