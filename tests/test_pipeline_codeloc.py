"""The sourceCodeLocation facet's url is a URI whatever the checkout's remote looks like."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.runtime.codeloc import remote_uri


@pytest.mark.parametrize(
    "remote, expected",
    [
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://user:s3cret@git.example.com/org/repo.git", "https://git.example.com/org/repo.git"),
        ("git@github.com:org/repo.git", "ssh://github.com/org/repo.git"),
    ],
)
def test_remote_urls_become_credential_free_uris(remote, expected):
    assert remote_uri(remote) == expected


def test_a_local_clone_remote_becomes_a_file_uri(tmp_path: Path):
    assert remote_uri(str(tmp_path)) == tmp_path.resolve().as_uri()
