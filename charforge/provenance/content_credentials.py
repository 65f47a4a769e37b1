"""C2PA content credentials on output PNGs, signed with a key the user makes locally (optional extra).

`charforge keys init` makes a local certificate authority and a signing certificate under it (EC P-256,
ES256) in the key folder: `$CHARFORGE_KEYS`, else `~/.config/charforge/c2pa`. No key ships with charforge
and none is ever put in a repository. When the `c2pa-python` package is installed (`pip install
'charforge[c2pa]'`) and the key folder holds a signer, every PNG charforge writes is signed: a C2PA manifest
(stored in the PNG's `caBX` chunk) whose `c2pa.actions` assertion says `c2pa.created` with digitalSourceType
trainedAlgorithmicMedia and the software agent charforge. `CHARFORGE_C2PA=0` turns signing off.

Signing and checking run offline: no timestamp authority is contacted (the manifest is then valid only while
the certificate is, two years), and trust comes from the local CA, which `check_bytes` adds as a trust
anchor when it finds it: then your own images read "trusted", other valid signers "valid".
"""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path
from typing import Any

from charforge import __version__
from charforge.errors import UserError

CA_CERT = "ca.pem"
SIGNER_CHAIN = "signer.pem"
SIGNER_KEY = "signer.key"
ALG = "es256"
SIGNER_DAYS = 730
CA_DAYS = 3650
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
_SIGNER_CACHE: dict[tuple, Any] = {}


def key_dir() -> Path:
    """Where the local signing key lives: $CHARFORGE_KEYS, else ~/.config/charforge/c2pa."""
    env = os.environ.get("CHARFORGE_KEYS")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "charforge" / "c2pa"


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UserError(
            f"C2PA needs the optional package {module!r}, which is not installed: pip install 'charforge[c2pa]'"
        ) from e


def _inside_git_repo(path: Path) -> Path | None:
    for parent in [path, *path.parents]:
        if (parent / ".git").exists():
            return parent
    return None


def init_keys(folder: str | Path | None = None, *, force: bool = False, name: str = "charforge user") -> dict:
    """Make a local CA and a signing certificate (EC P-256) in `folder` (default `key_dir()`).

    Refuses to overwrite an existing key without `force`, and refuses a folder inside a git repository (a key
    must never be committed). The private keys are written owner-only (0600). Returns the paths.
    """
    _require("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = Path(folder).expanduser() if folder is not None else key_dir()
    repo = _inside_git_repo(folder.resolve())
    if repo is not None:
        raise UserError(
            f"{folder}: inside the git repository {repo}; a signing key must never be committed. Give a folder "
            "outside any repository (the default is ~/.config/charforge/c2pa, or set CHARFORGE_KEYS)",
            field="dir",
        )
    if (folder / SIGNER_KEY).exists() and not force:
        raise UserError(
            f"{folder / SIGNER_KEY}: a signing key already exists; images signed with it stay verifiable only "
            "while you keep it. Pass --force to replace it",
            field="dir",
        )
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    now = dt.datetime.now(dt.timezone.utc)

    def subject(cn: str) -> x509.Name:
        return x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(subject(f"{name} local C2PA root"))
        .issuer_name(subject(f"{name} local C2PA root"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(x509, cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(subject(f"{name} charforge signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SIGNER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(x509, cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    paths = {"ca": folder / CA_CERT, "chain": folder / SIGNER_CHAIN, "key": folder / SIGNER_KEY}
    _write_private(paths["key"], key_pem)
    paths["chain"].write_bytes(signer.public_bytes(pem) + ca.public_bytes(pem))
    paths["ca"].write_bytes(ca.public_bytes(pem))
    # The CA's private key is not kept: it signed one certificate and is not needed again (a new
    # `keys init` makes a new CA). Nothing else can then be issued under this root.
    _SIGNER_CACHE.clear()
    return {
        **paths,
        "folder": folder,
        "not_after": signer.not_valid_after_utc.isoformat(),
        "subject": signer.subject.rfc4514_string(),
    }


def _key_usage(x509, *, cert_sign: bool):
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def signing_enabled() -> bool:
    """c2pa installed, a local key present, and CHARFORGE_C2PA not '0'."""
    if os.environ.get("CHARFORGE_C2PA", "1") == "0":
        return False
    import importlib.util

    folder = key_dir()
    return (
        importlib.util.find_spec("c2pa") is not None
        and (folder / SIGNER_KEY).is_file()
        and (folder / SIGNER_CHAIN).is_file()
    )


def _context(c2pa, folder: Path | None):
    """A c2pa Context: no thumbnail (outputs are small; a thumbnail would be larger than the image), and the
    local CA as a trust anchor when there is one."""
    settings: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}}
    ca = folder / CA_CERT if folder is not None else None
    if ca is not None and ca.is_file():
        settings["trust"] = {"trust_anchors": ca.read_text()}
        settings["verify"] = {"verify_trust": True}
    return c2pa.Context.from_dict(settings)


def _signer(c2pa, folder: Path):
    chain, key = folder / SIGNER_CHAIN, folder / SIGNER_KEY
    stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (chain, key))
    cache_key = (str(folder), stamp)
    if cache_key not in _SIGNER_CACHE:
        info = c2pa.C2paSignerInfo(ALG, chain.read_bytes(), key.read_bytes(), None)
        try:
            signer = c2pa.Signer.from_info(info)
        except c2pa.C2paError as e:
            raise UserError(
                f"{folder}: the C2PA signing key or certificate cannot be used ({e}); make a new one with "
                "`charforge keys init --force`"
            ) from e
        _SIGNER_CACHE.clear()
        _SIGNER_CACHE[cache_key] = signer
    return _SIGNER_CACHE[cache_key]


def manifest_definition(title: str = "charforge output") -> dict[str, Any]:
    return {
        "claim_generator_info": [{"name": "charforge", "version": __version__}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED,
                            "softwareAgent": {"name": "charforge", "version": __version__},
                        }
                    ]
                },
            }
        ],
    }


def sign_png(data: bytes, folder: str | Path | None = None) -> bytes:
    """The PNG `data` with a signed C2PA manifest embedded (pixels and other chunks unchanged)."""
    c2pa = _require("c2pa")
    folder = Path(folder) if folder is not None else key_dir()
    if not (folder / SIGNER_KEY).is_file():
        raise UserError(f"{folder}: no C2PA signing key; make one with `charforge keys init`")
    signer = _signer(c2pa, folder)
    out = io.BytesIO()
    with c2pa.Builder(manifest_definition(), context=_context(c2pa, None)) as builder:
        builder.sign(signer, "image/png", io.BytesIO(data), out)
    return out.getvalue()


MIME = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}


def check_bytes(data: bytes, fmt: str | None) -> dict[str, Any]:
    """Read and validate a C2PA manifest: {present, valid, trusted, state, digital_source_type,
    claim_generator, signer, failures, note}. Never raises for a bad file."""
    import c2pa

    rec: dict[str, Any] = {"present": False, "valid": False, "trusted": False, "state": None, "note": None}
    mime = MIME.get(fmt or "")
    if mime is None:
        rec["note"] = f"C2PA is not read from {fmt or 'this'} files here"
        return rec
    folder = key_dir()
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), context=_context(c2pa, folder))
    except Exception as e:  # a damaged manifest store: report it, keep checking the rest
        rec.update(present=True, state="Invalid", note=f"the C2PA manifest cannot be read ({str(e)[:160]})")
        return rec
    if reader is None:
        rec["note"] = "no C2PA content credentials"
        return rec
    with reader:
        state = reader.get_validation_state()
        results = reader.get_validation_results() or {}
        manifest = reader.get_active_manifest() or {}
    failures = [
        f.get("code")
        for f in (results.get("activeManifest") or {}).get("failure", [])
        if isinstance(f, dict) and f.get("code")
    ]
    rec.update(
        present=True,
        state=state,
        valid=state in ("Valid", "Trusted"),
        trusted=state == "Trusted",
        failures=failures,
        claim_generator=[
            g.get("name") for g in manifest.get("claim_generator_info", []) if isinstance(g, dict)
        ],
        digital_source_type=_source_type(manifest),
        signer=(manifest.get("signature_info") or {}).get("common_name")
        or (manifest.get("signature_info") or {}).get("issuer"),
    )
    if not rec["valid"]:
        rec["note"] = "C2PA manifest does not validate (" + (", ".join(failures) or str(state)) + ")"
    elif not rec["trusted"]:
        rec["note"] = "C2PA signature valid; the signer is not in your trust list (not your local key)"
    return rec


def _source_type(manifest: dict[str, Any]) -> str | None:
    for a in manifest.get("assertions", []):
        if isinstance(a, dict) and str(a.get("label", "")).startswith("c2pa.actions"):
            for act in (a.get("data") or {}).get("actions", []):
                if isinstance(act, dict) and act.get("digitalSourceType"):
                    return str(act["digitalSourceType"])
    return None


def describe(folder: Path | None = None) -> dict[str, Any]:
    """What `charforge keys show` prints: folder, files, subject, expiry, whether signing is on."""
    folder = folder or key_dir()
    rec: dict[str, Any] = {
        "folder": folder,
        "key": (folder / SIGNER_KEY).is_file(),
        "signing": signing_enabled(),
    }
    chain = folder / SIGNER_CHAIN
    if chain.is_file():
        try:
            from cryptography import x509

            cert = x509.load_pem_x509_certificates(chain.read_bytes())[0]
            rec["subject"] = cert.subject.rfc4514_string()
            rec["not_after"] = cert.not_valid_after_utc.isoformat()
        except Exception as e:  # noqa: BLE001 - a report, not a check
            rec["note"] = f"{chain}: cannot be read ({e})"
    return rec
