"""Checkpoints: atomic saves, a JSON manifest with hashes, safe loads, and resume files.

Layout of the checkpoint folder (`config.checkpoint_dir()`, shipped in the repository):

    checkpoints/
      manifest.json          {"models": {name: entry}}; entry = file, sha256, config, mode, metrics, ...
      moons-ddpm.pt          {"model": state_dict, "config": config}; loaded with weights_only=True
      moons-ddpm.resume.pt   optimizer, step and RNG state while training runs (git-ignored)
      manifest.json.lock     empty; `write_entry` holds an exclusive flock on it (git-ignored)

A file whose sha256 differs from its manifest entry is refused with `CheckpointError`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

MANIFEST = "manifest.json"
MANIFEST_LOCK = MANIFEST + ".lock"  # beside the manifest; write_entry's read-modify-write holds it
ENTRY_KEYS = ("file", "sha256", "config")  # what every manifest entry holds (save_model writes them)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, write) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it over `path`.

    A process killed mid-write leaves the old file intact (os.replace is atomic on one file system).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_torch(obj: Any, path: str | Path) -> None:
    """torch.save(obj, path), atomically."""
    _atomic_write(Path(path), lambda tmp: torch.save(obj, tmp))


def load_torch(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with weights_only=True: tensors, numbers, strings, lists and dicts only, no code."""
    return torch.load(path, map_location=map_location, weights_only=True)


def read_manifest(folder: str | Path) -> dict:
    """The manifest of `folder` as a dict ({"models": {}} when there is none yet)."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return {"models": {}}
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{path} is not valid JSON ({err}); restore it with git (git checkout -- {path.name} in "
            f"{path.parent}) or delete it and retrain the models it listed") from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise CheckpointError(f"{path} has no \"models\" table; restore it with git (git checkout -- "
                              f"{path.name} in {path.parent}) or delete it and retrain the models it listed")
    return manifest


@contextmanager
def _manifest_lock(folder: Path):
    """Hold an exclusive fcntl.flock on `folder/manifest.json.lock` (created if missing) inside the block.

    The lock file is never deleted: unlinking it while another process waits on it would let a third process
    lock a new file of the same name, and two writers would run at once. The kernel drops the lock when the
    file is closed, also when the process dies.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / MANIFEST_LOCK, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def write_entry(folder: str | Path, name: str, entry: dict) -> None:
    """Set the manifest entry of `name` (atomically, keeping the other entries).

    The read, the change and the atomic rename run under an exclusive lock on `folder/manifest.json.lock`:
    without it two processes finishing together (two trainings, or `train` and `evaluate`) both read the old
    manifest and the second rename drops the first one's entry. The lock is advisory (fcntl.flock): it orders
    writers that go through this function, on one machine; readers need none, as the rename is atomic.
    """
    folder = Path(folder)
    with _manifest_lock(folder):
        manifest = read_manifest(folder)
        manifest["models"][name] = entry
        manifest["models"] = dict(sorted(manifest["models"].items()))
        text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
        _atomic_write(folder / MANIFEST, lambda tmp: Path(tmp).write_text(text))


def save_model(folder: str | Path, name: str, state_dict: dict, config: dict, entry: dict,
               dtype: torch.dtype | None = None) -> Path:
    """Write `folder/name.pt` and its manifest entry (sha256, config, and `entry`'s fields).

    dtype: store floating tensors as this dtype (e.g. torch.bfloat16) to keep the file small;
    `load_model` casts back to the model's dtype through `load_state_dict`. Keys that share one tensor (a
    module registered twice, as `LatentDiffusionPrior`'s generator) still share it after the cast, so the file
    holds it once.
    """
    if dtype is not None:
        cast = {}  # one cast per stored tensor: (storage, offset, shape, stride) -> the cast tensor
        for k, v in state_dict.items():
            if v.is_floating_point():
                where = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), v.stride())
                cast.setdefault(where, v.to(dtype))
        state_dict = {k: cast[(v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), v.stride())]
                      if v.is_floating_point() else v for k, v in state_dict.items()}
    state_dict = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    path = Path(folder) / f"{name}.pt"
    save_torch({"model": state_dict, "config": config}, path)
    write_entry(folder, name, {"file": path.name, "sha256": sha256_file(path), "config": config, **entry})
    return path


def load_model(folder: str | Path, name: str) -> tuple[dict, dict]:
    """Load `folder/name.pt` after checking its sha256 against the manifest.

    Returns (state_dict, manifest entry). Raises CheckpointError when the entry or file is missing or the
    hash differs (a changed, truncated or half-downloaded file).
    """
    folder = Path(folder)
    entry = read_manifest(folder)["models"].get(name)
    if entry is None:
        raise CheckpointError(f"no manifest entry for {name!r} in {folder / MANIFEST}; "
                              f"train it with: python -m helpers train {name}")
    missing = [k for k in ENTRY_KEYS if k not in entry] if isinstance(entry, dict) else list(ENTRY_KEYS)
    if missing:
        raise CheckpointError(f"the manifest entry of {name!r} in {folder / MANIFEST} lacks {', '.join(missing)}; "
                              f"restore the manifest with git or retrain: python -m helpers train {name}")
    path = folder / entry["file"]
    if not path.exists():
        raise CheckpointError(f"{path} is listed in the manifest but missing; "
                              f"train it with: python -m helpers train {name}")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise CheckpointError(
            f"{path} does not match its manifest entry (sha256 {digest[:12]}..., expected "
            f"{entry['sha256'][:12]}...): the file was changed or truncated. Restore it with git "
            f"(git checkout -- {path.name}) or retrain with: python -m helpers train {name}")
    payload = load_torch(path)
    return payload["model"], entry


def scrambled_copy(src: str | Path, dst: str | Path, name: str, seed: int = 0) -> Path:
    """Copy the checkpoint folder `src` to `dst` with `name`'s weights scrambled: the test that a chapter's checks
    can fail. Run the chapter with `COURSE_CHECKPOINTS=dst` and its check cell must fail (README, "Checks").

    Every floating tensor of `name` with more than one element is permuted (its values kept, their places
    shuffled by `seed`), and its manifest entry gets the new file's sha256 and nothing else new: the metrics
    recorded at training time stay, so a check that reads them instead of measuring would still pass.
    Resume files are not copied. `dst` must not exist yet. Returns the scrambled file's path.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise ValueError(f"dst must be a new folder, {dst} exists")
    load_model(src, name)  # the source must be a valid checkpoint (hash checked)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.resume.pt"))
    entry = read_manifest(dst)["models"][name]
    payload = load_torch(dst / entry["file"])
    g = torch.Generator().manual_seed(seed)
    payload["model"] = {k: v.flatten()[torch.randperm(v.numel(), generator=g)].reshape(v.shape)
                        if v.is_floating_point() and v.numel() > 1 else v for k, v in payload["model"].items()}
    path = dst / entry["file"]
    save_torch(payload, path)
    write_entry(dst, name, {**entry, "sha256": sha256_file(path)})
    return path

