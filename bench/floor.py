#!/usr/bin/env python3
"""The benchmark's minimal registry client: seeds registries fast, and sends the requests a
sync cannot do without, to measure the floor dregsy is compared with. Registries on
127.0.0.1, plain HTTP, no auth; every connection has a timeout.

    floor.py seed-tags PORT STORAGE REPOS TAGS PREFIX
        One small image (a 1 KiB layer and a config) in every repository PREFIX-NNN, the
        layer and config uploaded once and mounted into the others, its manifest PUT as tag
        1.0.0. Tags 1.0.1 ... 1.0.TAGS-1 are the same manifest bytes: each is written into
        the registry's filesystem STORAGE as the two link files its PUT would leave (at
        50,000 tags this takes seconds, where 50,000 PUTs take minutes on a loaded machine).
    floor.py heads-config SRC_PORT DST_PORT PREFIX REPOS TAGS
        Prints a curl config (-K) for the no-op floor: HEAD of every source manifest and of
        every target manifest, in the order dregsy's jobs send them (bench/scale.sh runs it
        with curl --parallel).
    floor.py heads JOBS SRC_PORT DST_PORT PREFIX REPOS TAGS
        The same HEADs from Python: JOBS threads, each takes the next tag and sends its
        source and target HEAD at once (as one of dregsy's image jobs does), on keep-alive
        connections; every answer must be 200.
    floor.py copy IMAGES BLOBS SRC_PORT DST_PORT TAG REPO...
        The cold-copy floor: per image (IMAGES at once) GET the manifest, stream every blob
        GET -> POST/PUT (BLOBS at once across all images), then PUT the manifest.

Each subcommand prints one line: the requests sent and their outcome; it exits 1 on any
unexpected status.
"""
import hashlib
import http.client
import json
import os
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

TIMEOUT = 60
CHUNK = 1 << 20
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

_local = threading.local()


def conn(port):
    """This thread's keep-alive connection to 127.0.0.1:port."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    if port not in pool:
        pool[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    return pool[port]


def request(port, method, path, body=None, headers=None, expect=(200, 201, 202, 204)):
    """One request; returns (status, headers, body bytes). A stale connection is reopened once."""
    for attempt in range(2):
        c = conn(port)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            break
        except (http.client.HTTPException, ConnectionError):
            c.close()
            if attempt == 1:
                raise
    if r.status not in expect:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
    return r.status, r.headers, data


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload_path(port, repo, digest):
    """POSTs an upload session; returns the path to PUT the blob to."""
    _, h, _ = request(port, "POST", f"/v2/{repo}/blobs/uploads/")
    location = urllib.parse.urlsplit(h["Location"])
    query = f"{location.query}&" if location.query else ""
    return f"{location.path}?{query}digest={digest}"


def upload(port, repo, data):
    """Monolithic upload: POST, then PUT of the whole body."""
    request(port, "PUT", upload_path(port, repo, digest_of(data)), body=data,
            headers={"Content-Type": "application/octet-stream"})


def tag_links(storage, repo, tags, digest):
    """The files a PUT of manifest `digest` as tags 1.0.1 ... 1.0.TAGS-1 leaves in a CNCF
    Distribution filesystem storage (current tag link and tag index entry)."""
    root = os.path.join(storage, "docker/registry/v2/repositories", repo, "_manifests/tags")
    algorithm, hex_digest = digest.split(":")
    for t in range(1, tags):
        for path in (os.path.join(root, f"1.0.{t}", "current"),
                     os.path.join(root, f"1.0.{t}", "index", algorithm, hex_digest)):
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "link"), "w") as f:
                f.write(digest)


def seed_tags(port, storage, repos, tags, prefix):
    layer = bytes(range(256)) * 4
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest_of(layer), "size": len(layer)}],
    }).encode()
    names = [f"{prefix}-{n:03d}" for n in range(repos)]
    upload(port, names[0], layer)
    upload(port, names[0], config)

    def one(name):
        if name != names[0]:
            for blob in (layer, config):
                request(port, "POST", f"/v2/{name}/blobs/uploads/?mount={digest_of(blob)}&from={names[0]}",
                        expect=(201,))
        request(port, "PUT", f"/v2/{name}/manifests/1.0.0", body=manifest,
                headers={"Content-Type": OCI_MANIFEST}, expect=(201,))
        tag_links(storage, name, tags, digest_of(manifest))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, names))
    print(f"seeded {repos} repositories x {tags} tags ({3 * repos + 2} requests)")


def heads_config(src, dst, prefix, repos, tags):
    for n in range(repos):
        for t in range(tags):
            for port in (src, dst):
                print(f'url = "http://127.0.0.1:{port}/v2/{prefix}-{n:03d}/manifests/1.0.{t}"')
                print('output = "/dev/null"')


def heads(jobs, src, dst, prefix, repos, tags):
    paths = [f"/v2/{prefix}-{n:03d}/manifests/1.0.{t}" for n in range(repos) for t in range(tags)]
    accept = {"Accept": MANIFEST_TYPES}
    # The target's HEAD goes out on a second thread while this one sends the source's: two
    # requests in flight per job, as in dregsy.
    target_side = ThreadPoolExecutor(jobs)

    def one(path):
        target = target_side.submit(request, dst, "HEAD", path, None, accept, (200,))
        request(src, "HEAD", path, headers=accept, expect=(200,))
        target.result()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, paths))
    target_side.shutdown()
    print(f"sent {2 * len(paths)} HEAD requests")


def copy(images, blobs, src, dst, tag, repos):
    blob_pool = ThreadPoolExecutor(blobs)

    def stream_blob(repo, desc):
        digest, size = desc["digest"], desc["size"]
        source = http.client.HTTPConnection("127.0.0.1", src, timeout=TIMEOUT)
        source.request("GET", f"/v2/{repo}/blobs/{digest}")
        r = source.getresponse()
        if r.status != 200:
            raise RuntimeError(f"GET blob {digest}: {r.status}")
        target = http.client.HTTPConnection("127.0.0.1", dst, timeout=TIMEOUT)
        target.putrequest("PUT", upload_path(dst, repo, digest))
        target.putheader("Content-Type", "application/octet-stream")
        target.putheader("Content-Length", str(size))
        target.endheaders()
        sent = 0
        while sent < size:
            chunk = r.read(min(CHUNK, size - sent))
            if not chunk:
                raise RuntimeError(f"blob {digest} ended after {sent} of {size} bytes")
            target.send(chunk)
            sent += len(chunk)
        answer = target.getresponse()
        answer.read()
        if answer.status != 201:
            raise RuntimeError(f"PUT blob {digest}: {answer.status}")
        source.close()
        target.close()

    def image(repo):
        _, h, body = request(src, "GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
        manifest = json.loads(body)
        descs = [manifest["config"]] + manifest["layers"]
        for f in [blob_pool.submit(stream_blob, repo, d) for d in descs]:
            f.result()
        request(dst, "PUT", f"/v2/{repo}/manifests/{tag}", body=body,
                headers={"Content-Type": h["Content-Type"]}, expect=(201,))
        return len(descs)
    with ThreadPoolExecutor(images) as pool:
        count = sum(pool.map(image, repos))
    blob_pool.shutdown()
    print(f"copied {len(repos)} images, {count} blobs")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "seed-tags":
        seed_tags(int(args[0]), args[1], int(args[2]), int(args[3]), args[4])
    elif cmd == "heads-config":
        heads_config(int(args[0]), int(args[1]), args[2], int(args[3]), int(args[4]))
    elif cmd == "heads":
        heads(int(args[0]), int(args[1]), int(args[2]), args[3], int(args[4]), int(args[5]))
    elif cmd == "copy":
        copy(int(args[0]), int(args[1]), int(args[2]), int(args[3]), args[4], args[5:])
    else:
        sys.exit(f"unknown subcommand {cmd}")
