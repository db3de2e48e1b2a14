"""diqkd: device-independent QKD post-processing.

Bell-test records in, certified secret keys and an audit report out.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("diqkd")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
