"""A folder that is either local or an S3 prefix (boto3), for raw sources, artefacts and exports.

S3 endpoints other than AWS (MinIO, moto in tests) come from `endpoint_url` or boto3's own
`AWS_ENDPOINT_URL` environment variable.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

S3_MAX_ATTEMPTS = 8
"""Attempts per S3 request (the first + retries) before an error reaches the asset."""


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} has no bucket; expected s3://bucket/prefix")
    return bucket, prefix.strip("/")


def endpoint_for(endpoint_url: str | None) -> str | None:
    """The S3 endpoint: the configured one, else boto3's own environment variables (`AWS_ENDPOINT_URL_S3`,
    `AWS_ENDPOINT_URL`), else None (AWS)."""
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def content_digest(data: bytes) -> str:
    """The version of a stored artefact: ``sha256:<hex>`` of its bytes (metadata, manifests and checks compare it)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_checksum(path: Path) -> str:
    """The digest of a local file's content, as `content_digest` writes it."""
    with open(path, "rb") as f:
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def is_missing(exc: Exception) -> bool:
    """Whether `exc` says the file or object is not there: a missing local file, or S3's answer for a missing key
    (botocore's ClientError with code NoSuchKey, or 404 / NotFound from a HEAD)."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return isinstance(exc, FileNotFoundError) or code in ("NoSuchKey", "404", "NotFound")


def _local_signature(stat) -> str:
    return f"{stat.st_size}:{stat.st_mtime_ns}"


@functools.lru_cache(maxsize=8)
def _arrow_s3(endpoint: str | None, region: str | None):
    import pyarrow.fs as pafs

    options: dict = {
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=S3_MAX_ATTEMPTS),
        "connect_timeout": 10,
        "request_timeout": 60,
    }
    if endpoint:
        parsed = urlparse(endpoint)
        options.update(endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https")
    if region:
        options["region"] = region
    # No keys here: the AWS SDK's default chain (environment, web identity / IRSA, instance role), as boto3's.
    return pafs.S3FileSystem(**options)


@dataclass(frozen=True)
class Entry:
    """An object under a location: its relative name, size in bytes and signature (see `Location.signature`)."""

    name: str
    size: int
    signature: str


@dataclass(frozen=True)
class Location:
    uri: str
    endpoint_url: str | None = None
    cache_dir: str = ".hm_recs/cache"

    # ------------------------------------------------------------------ helpers
    def _client(self):
        import boto3
        from botocore.config import Config

        # Throttling (503 SlowDown) and 5xx are retried with backoff (botocore's standard mode); credentials come
        # from the environment or the instance/pod role, never from configuration here.
        config = Config(
            retries={"mode": "standard", "max_attempts": S3_MAX_ATTEMPTS}, connect_timeout=10, read_timeout=60
        )
        return (
            boto3.client("s3", endpoint_url=self.endpoint_url, config=config)
            if self.endpoint_url
            else boto3.client("s3", config=config)
        )

    def _key(self, name: str) -> str:
        _, prefix = split_s3(self.uri)
        name = self._contained(name)
        return f"{prefix}/{name}" if prefix else name

    def _contained(self, name: str) -> str:
        """`name` if it stays inside the location (no absolute path, no `..` step), else a ValueError: a name
        from a listing, a manifest or configuration never reaches outside the configured root."""
        parts = name.replace("\\", "/").split("/")
        if name.startswith("/") or ".." in parts or not name:
            raise ValueError(f"{name!r} is outside {self.uri}: names must stay under the configured root")
        return name

    def _path(self, name: str) -> Path:
        return Path(self.uri) / self._contained(name)

    def describe(self, name: str) -> str:
        return f"{self.uri.rstrip('/')}/{name}"

    # ------------------------------------------------------------------ reading
    def names(self) -> set[str]:
        """Relative names of every file under the location (recursively); a local folder must exist."""
        if not is_s3(self.uri) and not Path(self.uri).is_dir():
            raise FileNotFoundError(f"source folder {self.uri} does not exist")
        return {entry.name for entry in self.listing()}

    def listing(self, under: str = "") -> list[Entry]:
        """Every object under the location, or under its sub-folder `under`, with size and signature, in one
        listing (S3: LIST requests, no HEAD per object). A folder or prefix that does not exist lists nothing."""
        under = self._contained(under).strip("/") if under else ""
        if not is_s3(self.uri):
            root = Path(self.uri)
            folder = root / under if under else root
            if not folder.is_dir():
                return []
            entries = []
            for path in folder.rglob("*"):
                if path.is_file():
                    stat = path.stat()
                    entries.append(Entry(path.relative_to(root).as_posix(), stat.st_size, _local_signature(stat)))
            return entries
        bucket, prefix = split_s3(self.uri)
        start = "/".join(p for p in (prefix, under) if p)
        entries = []
        for page in (
            self._client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{start}/" if start else "")
        ):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) + 1 :] if prefix else obj["Key"]
                entries.append(Entry(name, int(obj["Size"]), obj["ETag"].strip('"')))
        return entries

    def arrow_filesystem(self) -> tuple[object, str]:
        """A pyarrow filesystem over this location and the root path in it (`bucket/prefix` on S3): for readers
        that fetch byte ranges themselves (Parquet footers and row groups), with the same endpoint, retries and
        credential chain as the boto3 client. Cached per endpoint and region."""
        import pyarrow.fs as pafs

        if not is_s3(self.uri):
            return pafs.LocalFileSystem(), str(Path(self.uri).resolve())
        bucket, prefix = split_s3(self.uri)
        endpoint = endpoint_for(self.endpoint_url)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region and not endpoint:
            try:  # the bucket's own region (pyarrow would otherwise assume us-east-1)
                region = pafs.resolve_s3_region(bucket)
            except OSError:
                region = None
        return _arrow_s3(endpoint, region), "/".join(p for p in (bucket, prefix) if p)

    def signature(self, name: str) -> str:
        """What changes when the file is replaced, without reading it: size and modification time locally, the
        ETag on S3 (a re-dropped file with new content gets a new signature)."""
        if not is_s3(self.uri):
            return _local_signature(self._path(name).stat())
        bucket, _ = split_s3(self.uri)
        return self._client().head_object(Bucket=bucket, Key=self._key(name))["ETag"].strip('"')

    def local_path(self, name: str) -> tuple[Path, str]:
        """A local file with the content of `name` and its checksum; S3 objects are cached by ETag."""
        if not is_s3(self.uri):
            path = self._path(name)
            return path, file_checksum(path) if path.exists() else ""
        bucket, _ = split_s3(self.uri)
        client = self._client()
        head = client.head_object(Bucket=bucket, Key=self._key(name))
        etag = head["ETag"].strip('"')
        digest = hashlib.sha256(f"{self.uri}/{name}".encode()).hexdigest()[:16]
        target = Path(self.cache_dir) / "s3" / digest / etag / Path(name).name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".part")
            client.download_file(bucket, self._key(name), str(partial))
            partial.rename(target)
        return target, f"s3-etag:{etag}"

    def read_bytes(self, name: str) -> bytes:
        if not is_s3(self.uri):
            return self._path(name).read_bytes()
        bucket, _ = split_s3(self.uri)
        return self._client().get_object(Bucket=bucket, Key=self._key(name))["Body"].read()

    # ------------------------------------------------------------------ writing
    def write_bytes(self, name: str, data: bytes) -> str:
        """Write atomically (local: temp file + rename; S3: a single PUT) and return the full URI."""
        if not is_s3(self.uri):
            path = self._path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
            return str(path.resolve())
        bucket, _ = split_s3(self.uri)
        self._client().put_object(Bucket=bucket, Key=self._key(name), Body=data)
        return self.describe(name)

    def write_file(self, name: str, source: Path) -> str:
        if not is_s3(self.uri):
            path = self._path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            shutil.copyfile(source, tmp)
            tmp.replace(path)
            return str(path.resolve())
        bucket, _ = split_s3(self.uri)
        self._client().upload_file(str(source), bucket, self._key(name))
        return self.describe(name)
