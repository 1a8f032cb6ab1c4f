"""The device the notebooks use: CUDA, else Apple MPS (when it really computes), else the CPU."""

import os

DEVICE_ENV = "DLWPT_DEVICE"


def get_device():
    """Return the ``torch.device`` the notebooks use.

    Order: CUDA, then Apple MPS, then CPU. Set ``DLWPT_DEVICE`` (``cpu``,
    ``cuda``, ``cuda:1``, ``mps``) to force one; forcing a device that is not
    available raises a ``RuntimeError`` instead of silently falling back.

    MPS counts only when a small tensor can really be computed there: virtual
    Macs (GitHub's macOS runners among them) report MPS available, then fail
    on the first allocation. Auto-detection then warns and uses the CPU.
    """
    import torch

    forced = os.environ.get(DEVICE_ENV, "").strip().lower()
    if forced:
        device = torch.device(forced)  # raises on a malformed name
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"{DEVICE_ENV}={forced} but CUDA is not available here")
        if device.type == "mps":
            if not _mps_available():
                raise RuntimeError(f"{DEVICE_ENV}={forced} but Apple MPS is not available here")
            failure = _mps_failure()
            if failure:
                raise RuntimeError(f"{DEVICE_ENV}={forced} but Apple MPS does not work here: {failure}")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        failure = _mps_failure()
        if failure is None:
            return torch.device("mps")
        import warnings

        warnings.warn(
            f"Apple MPS reports itself available but a small computation on it failed ({failure}); "
            f"using the CPU. Set {DEVICE_ENV}=cpu to choose it without this check.",
            RuntimeWarning,
            stacklevel=2,
        )
    return torch.device("cpu")


def _mps_available():
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def _mps_failure():
    """None if a small tensor can be made and computed on MPS, else the error, in one line."""
    import torch

    try:
        x = torch.ones(4, device="mps")
        if (x * 2).sum().item() != 8.0:
            return "a wrong result"
    except Exception as err:  # RuntimeError: MPS backend out of memory, ... (no GPU in a virtual Mac)
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        return f"{type(err).__name__}: {first}".rstrip(": ")
    return None


def describe_device(device=None):
    """Print and return one line saying which device is used (and the GPU's name)."""
    import torch

    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        what = f"cuda ({torch.cuda.get_device_name(device)})"
    elif device.type == "mps":
        what = "mps (Apple GPU)"
    else:
        what = "cpu"
    how = f"forced by {DEVICE_ENV}" if os.environ.get(DEVICE_ENV) else "auto-detected"
    line = f"Using device: {what} [{how}]"
    print(line)
    return line
