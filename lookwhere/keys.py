"""``lookwhere keys``: create a CURVE key pair for encrypted streaming between lab machines.

The server's public key goes to every experiment machine; each experiment machine's public key goes
into the server's allow-list folder (see :func:`lookwhere.transport.start_authenticator`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder for <name>.key and <name>.key_secret")
    parser.add_argument("--name", default="server", help="file stem, e.g. server or rig1 (default: server)")


def main(args: argparse.Namespace) -> int:
    from lookwhere.transport import create_keys

    public_file, secret_file = create_keys(args.out, name=args.name)
    print(f"public key: {public_file} (share it)")
    print(f"secret key: {secret_file} (keep it on this machine only)")
    return 0
