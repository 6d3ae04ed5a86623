"""The HTTP session for a DICOMweb PACS: credentials from the environment or a netrc file, TLS verified.

Credentials never come from the command line (it is visible to every user of the machine in the
process list and ends up in shell histories). In order of precedence:

1. ``PILLETGAN_PACS_TOKEN``: a bearer token (``Authorization: Bearer ...``);
2. ``PILLETGAN_PACS_USER`` and ``PILLETGAN_PACS_PASSWORD``: HTTP Basic authentication;
3. a netrc file given explicitly (``--netrc PATH``): the entry of the PACS host;
4. otherwise ``requests`` reads ``~/.netrc`` (or the file ``$NETRC`` names) itself.

TLS certificates are verified (the system's CA store or ``REQUESTS_CA_BUNDLE``, or ``ca_bundle``);
``insecure`` turns verification off, with a warning. An explicit ``ca_bundle`` or ``insecure`` wins over
``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` in the environment (plain ``requests`` lets those override it).
"""

from __future__ import annotations

import logging
import netrc
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from ..errors import ConfigurationError

__all__ = ["PASSWORD_VARIABLE", "TOKEN_VARIABLE", "USER_VARIABLE", "pacs_session"]

logger = logging.getLogger(__name__)

USER_VARIABLE = "PILLETGAN_PACS_USER"
PASSWORD_VARIABLE = "PILLETGAN_PACS_PASSWORD"
TOKEN_VARIABLE = "PILLETGAN_PACS_TOKEN"
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


class _PacsSession(requests.Session):
    """A session whose explicit TLS setting is not overridden by ``REQUESTS_CA_BUNDLE`` in the environment."""

    explicit_verify = False

    def merge_environment_settings(self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self.explicit_verify and verify is None:
            settings["verify"] = self.verify
        return settings


def pacs_session(url: str, *, netrc_file: str | os.PathLike | None = None, ca_bundle: str | os.PathLike | None = None,
                 insecure: bool = False, environ: Mapping[str, str] | None = None) -> tuple[requests.Session, str]:
    """A ``requests`` session for the PACS at ``url`` and where its credentials came from (never the secret).

    Raises:
        ConfigurationError: a user without a password (or the reverse), a netrc file that is missing, unreadable
            or has no entry for the host, a CA bundle that does not exist, or ``ca_bundle`` with ``insecure``.
    """
    environ = os.environ if environ is None else environ
    try:
        parts = urlsplit(url)
        hostname, _ = parts.hostname, parts.port  # reading the port checks it
    except ValueError as err:  # an unclosed IPv6 bracket, a port that is no number
        raise ConfigurationError(f"the PACS URL {url!r} cannot be read ({err})") from err
    if parts.scheme not in ("http", "https") or not hostname:
        raise ConfigurationError(f"the PACS URL {url!r} is not an http:// or https:// URL with a host, e.g. "
                                 "https://pacs.example.org/dicom-web")
    session = _PacsSession()
    origin = _authenticate(session, parts.hostname, netrc_file, environ)
    if origin != "none" and parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        logger.warning("credentials for %s are sent over plain http; use https outside a test set-up", parts.hostname)
    _verify(session, ca_bundle, insecure)
    return session, origin


def _authenticate(session: requests.Session, host: str, netrc_file: str | os.PathLike | None,
                  environ: Mapping[str, str]) -> str:
    token = environ.get(TOKEN_VARIABLE)
    user, password = environ.get(USER_VARIABLE), environ.get(PASSWORD_VARIABLE)
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
        return f"environment ({TOKEN_VARIABLE})"
    if user or password:
        if not (user and password):
            missing = PASSWORD_VARIABLE if user else USER_VARIABLE
            raise ConfigurationError(f"{USER_VARIABLE} and {PASSWORD_VARIABLE} go together: {missing} is not set")
        session.auth = (user, password)
        return f"environment ({USER_VARIABLE})"
    if netrc_file is not None:
        session.auth = _netrc_login(Path(netrc_file), host)
        return f"netrc file {netrc_file}"
    return "~/.netrc when it has an entry for the host (requests), else none"


def _netrc_login(path: Path, host: str) -> tuple[str, str]:
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except FileNotFoundError as err:
        raise ConfigurationError(f"the netrc file {path} does not exist") from err
    except (OSError, netrc.NetrcParseError) as err:
        raise ConfigurationError(f"the netrc file {path} cannot be read ({err})") from err
    if entry is None:
        raise ConfigurationError(f"the netrc file {path} has no 'machine {host}' entry (and no 'default' entry)")
    login, _, password = entry
    if not login or not password:
        raise ConfigurationError(f"the netrc entry for {host} in {path} needs both 'login' and 'password'")
    return login, password


def _verify(session: _PacsSession, ca_bundle: str | os.PathLike | None, insecure: bool) -> None:
    if ca_bundle is not None and insecure:
        raise ConfigurationError("--ca-bundle and --insecure contradict each other: give one")
    if ca_bundle is not None:
        if not Path(ca_bundle).is_file():
            raise ConfigurationError(f"the CA bundle {ca_bundle} does not exist or is not a file")
        session.verify, session.explicit_verify = str(ca_bundle), True
    elif insecure:
        logger.warning("TLS certificate verification is OFF (--insecure): anyone on the network path can read and "
                       "alter the images and the credentials; use --ca-bundle with the PACS's CA certificate instead")
        session.verify, session.explicit_verify = False, True
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
