"""What version of the Iris source is there now: a sha256 of its bytes, for noticing that the data changed.

The same source ``dataset.load_iris`` reads (``IRIS_SAGEMAKER_DATA_URL``: the packaged copy, ``file://`` or
``http(s)://``), with the same errors. A file is hashed as it is read, never held whole.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlparse

from iris_sagemaker.core.dataset import open_file_source, read_source

READ_BYTES = 1 << 20


def source_version(url: str | None) -> str:
    """The sha256 (hex) of the source's bytes. Raises ``IrisDataError`` saying why it cannot be read."""
    digest = hashlib.sha256()
    if url and urlparse(url).scheme == "file":
        with open_file_source(url) as fh:
            while block := fh.read(READ_BYTES):
                digest.update(block)
    else:
        digest.update(read_source(url)[1])
    return digest.hexdigest()
