"""The two remote kinds of weights SOURCE, fetched into their caches: ``timm:NAME.TAG`` from timm's repositories on the
Hugging Face Hub (huggingface_hub and its cache) and ``torchvision:WEIGHTS`` from torchvision's URLs (torch.hub's
cache, ``$TORCH_HOME/hub/checkpoints``).

A file already in its cache is used without touching the network. Otherwise one attempt is made, with a short
timeout and no retry, so a machine without network hears so at once, with the cache path the file belongs at and
how to put it there by hand. ``HF_HUB_OFFLINE=1`` (and, for torchvision, ``BOTNET_OFFLINE=1``) reads only the cache.

huggingface_hub and torchvision are imported by the functions that use them: reading local weights, and every
command that does, loads neither.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

import torch.hub

from ..timm_family import TIMM_PRESETS
from .files import WeightsSourceError
from .known import TIMM_TAGS

HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what a timm repository holds, in the order tried
# Seconds one connection attempt may take: long enough for a slow link, short enough that no network is said at once.
# huggingface_hub's HF_HUB_ETAG_TIMEOUT, when set, replaces it for the hub.
CONNECT_TIMEOUT = 5.0
_TORCHVISION_RESNET = re.compile(r"^ResNet(50|101|152)_Weights\.\w+$")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    """huggingface_hub's cache, as it resolves it now: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else its default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants  # imported when used (start-up)

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    from huggingface_hub import constants  # imported when used (start-up)

    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or bool(constants.HF_HUB_OFFLINE)


def _hub_timeout() -> float:
    """huggingface_hub's ``HF_HUB_ETAG_TIMEOUT`` when it was set (as huggingface_hub itself reads it), else ours."""
    from huggingface_hub import constants  # imported when used (start-up)

    if constants.HF_HUB_ETAG_TIMEOUT != constants.DEFAULT_ETAG_TIMEOUT:
        return constants.HF_HUB_ETAG_TIMEOUT
    return CONNECT_TIMEOUT


def _why(err: Exception) -> str:
    """An exception in a few words: its HTTP status, else its type and first line."""
    status = getattr(getattr(err, "response", None), "status_code", None)
    first = next(iter(str(err).splitlines()), "")
    return f"HTTP {status}" if isinstance(status, int) else f"{type(err).__name__}: {first}".rstrip(": ")


def _timm_unpublished(source: str, name: str, tag: str) -> WeightsSourceError:
    tags = TIMM_TAGS.get(name, ())
    if tags:
        sources = " or ".join(f"timm:{name}.{t}" for t in tags)
        return WeightsSourceError(
            f"{source}: timm publishes no weights tagged {tag!r} for {name}; "
            f"published tags of {name}: {', '.join(tags)} (the source {sources})"
        )
    every = ", ".join(f"timm:{n}.{t}" for n, ts in TIMM_TAGS.items() for t in ts)
    return WeightsSourceError(f"{source}: timm publishes no weights for {name}; timm sources with weights: {every}")


def _timm_by_hand(spec: str, cache: Path, url: str) -> str:
    """How to give ``timm:spec`` without network: where its file goes in the hub cache, or a path as the source."""
    repo = cache / f"models--timm--{spec}"
    return (
        f"To go on without network: on a machine with network run `hf download timm/{spec} model.safetensors` (or "
        f"fetch {url}), then either copy the folder models--timm--{spec} of that machine's hub cache to {repo} (the "
        f"file is then {repo / 'snapshots' / '<commit>' / 'model.safetensors'}, <commit> being the id written in "
        f"{repo / 'refs' / 'main'}) or give the downloaded file's path as the source"
    )


def _hub_cached(repo_id: str, cache: Path) -> Path | None:
    """The first of ``HUB_FILES`` of ``repo_id`` in the hub cache (its ``main`` revision), without the network."""
    from huggingface_hub import try_to_load_from_cache  # imported when used (start-up)

    for filename in HUB_FILES:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache)
        if isinstance(found, str):  # else None (not cached) or a marker that the hub has no such file
            return Path(found)
    return None


def fetch_timm(spec: str) -> Path:
    """The local path of ``timm:spec`` (NAME.TAG): from the hub cache, else downloaded into it in one attempt."""
    source = f"timm:{spec}"
    name, _, tag = spec.partition(".")
    if not name or not tag:
        raise WeightsSourceError(f"{source}: timm sources are timm:NAME.TAG, e.g. timm:botnet26t_256.c1_in1k")
    if name not in TIMM_PRESETS:
        raise WeightsSourceError(
            f"{source}: {name!r} is not one of timm's networks in our zoo; timm sources fit {', '.join(TIMM_PRESETS)}"
        )
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url  # when used (start-up)
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError

    repo_id, cache = f"timm/{spec}", hub_cache_dir()
    if cached := _hub_cached(repo_id, cache):
        return cached
    if tag not in TIMM_TAGS.get(name, ()):
        raise _timm_unpublished(source, name, tag)
    by_hand = _timm_by_hand(spec, cache, hf_hub_url(repo_id, HUB_FILES[0]))
    if hub_offline():
        raise WeightsSourceError(
            f"cannot get {source}: offline (HF_HUB_OFFLINE) and not in the cache {cache}. {by_hand}; or unset "
            "HF_HUB_OFFLINE to download it"
        )
    for filename in HUB_FILES:
        url = hf_hub_url(repo_id, filename)
        try:  # one HEAD request without retry: hf_hub_download alone would retry a dead network for a minute
            get_hf_file_metadata(url, timeout=_hub_timeout(), retry_on_errors=False)
        except RemoteEntryNotFoundError:
            continue
        except RepositoryNotFoundError as err:
            raise WeightsSourceError(
                f"{source}: the Hugging Face Hub has no repository {repo_id} ({_why(err)})"
            ) from None
        except Exception as err:  # noqa: BLE001 - no connection, a timeout, a proxy, the hub down: all unreachable
            raise WeightsSourceError(
                f"cannot get {source}: the Hugging Face Hub ({constants.ENDPOINT}) cannot be reached ({_why(err)}) "
                f"and the file is not in the hub cache {cache}. {by_hand}. HF_HUB_OFFLINE=1 reads only the cache, "
                "without this attempt"
            ) from None
        try:
            return Path(hf_hub_download(repo_id, filename, cache_dir=cache))
        except Exception as err:  # noqa: BLE001 - the connection lost, the disk full: reported with the cache path
            raise WeightsSourceError(f"cannot download {source} from {url} ({_why(err)}). {by_hand}") from None
    raise WeightsSourceError(f"{source}: {repo_id} on the Hugging Face Hub holds none of {', '.join(HUB_FILES)}")


def torchvision_weights(spec: str, source: str):
    """torchvision's weights enum named ``spec`` (``ResNet50_Weights.IMAGENET1K_V2``), or an error naming the ones
    that fit our networks."""
    if not _TORCHVISION_RESNET.match(spec):
        raise WeightsSourceError(
            f"{source}: only torchvision's ResNet-50/101/152 weights fit our networks, named like "
            "torchvision:ResNet50_Weights.IMAGENET1K_V2 (or IMAGENET1K_V1, DEFAULT)"
        )
    from torchvision.models import get_weight  # imported when used (start-up)

    try:
        return get_weight(spec)
    except (KeyError, ValueError) as err:
        raise WeightsSourceError(f"{source}: torchvision has no such weights ({err})") from None


def torchvision_cache_path(url: str) -> Path:
    """Where torch.hub keeps the file downloaded from ``url`` (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _reach(url: str) -> None:
    """One HEAD request to ``url`` within ``CONNECT_TIMEOUT``: raises OSError when its server cannot be reached."""
    try:
        with urlopen(Request(url, method="HEAD", headers={"User-Agent": "torch.hub"}), timeout=CONNECT_TIMEOUT):
            pass
    except HTTPError:
        pass  # the server answered; the download says what


def fetch_torchvision(spec: str) -> tuple[Path, object]:
    """The local path and weights enum of ``torchvision:spec``: from torch.hub's cache, else downloaded into it in
    one attempt."""
    source = f"torchvision:{spec}"
    weights = torchvision_weights(spec, source)
    path = torchvision_cache_path(weights.url)
    if path.is_file():
        return path, weights
    by_hand = f"download {weights.url} on a machine with network and place it at {path}, or give its path as the source"
    if _truthy(os.environ.get("BOTNET_OFFLINE")) or hub_offline():
        raise WeightsSourceError(
            f"cannot get {source}: offline (BOTNET_OFFLINE / HF_HUB_OFFLINE) and not cached. To go on: {by_hand}"
        )
    try:
        _reach(weights.url)
    except OSError as err:  # no route, no name resolution, refused, a timeout
        reason = err.reason if isinstance(getattr(err, "reason", None), Exception) else err  # URLError's cause
        raise WeightsSourceError(
            f"cannot get {source}: {urlparse(weights.url).netloc} cannot be reached ({_why(reason)}) and the file is "
            f"not in torch.hub's cache. To go on without network: {by_hand}. BOTNET_OFFLINE=1 reads only the cache, "
            "without this attempt"
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        prefix = re.search(r"-([a-f0-9]+)\.", path.name)
        torch.hub.download_url_to_file(weights.url, str(path), hash_prefix=prefix.group(1) if prefix else None)
    except Exception as err:  # noqa: BLE001 - network, disk, hash: all reported with the path
        raise WeightsSourceError(
            f"cannot download {source} from {weights.url} ({_why(err)}). To go on: {by_hand}"
        ) from None
    return path, weights
