"""Authenticated, encrypted sockets between the policy and the robot: ZeroMQ CURVE with a ZAP handler that
admits only the policy's public key. Without keys, only loopback addresses are allowed.

    embodied keys keys/          # robot.key, robot.key_secret, policy.key, policy.key_secret (owner-only)

The robot's computer needs robot.key_secret and policy.key; the policy's computer needs policy.key_secret
and robot.key. Both robot sockets (observations out, plans in) are CURVE servers: a process without the
policy's secret key can neither read observations nor send a plan.
"""

from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import urlparse

from embodied.errors import UserError

ROLES = ("robot", "policy")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def make_keys(directory: str | Path) -> dict[str, Path]:
    """Key pairs for the robot and the policy in `directory` (created owner-only); never overwrites a key."""
    import zmq.auth

    directory = Path(directory)
    taken = [p.name for r in ROLES for p in (directory / f"{r}.key", directory / f"{r}.key_secret") if p.exists()]
    if taken:
        raise FileExistsError(f"{directory} already holds {taken}: keys are never overwritten; "
                              "move them away to make new ones")
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)  # before the secrets are written: nobody else can open them even for a moment
    made = {}
    for role in ROLES:
        public, secret = zmq.auth.create_certificates(directory, role)
        Path(secret).chmod(0o600)
        made[role], made[f"{role}_secret"] = Path(public), Path(secret)
    return made


def load_keys(directory: str | Path, me: str) -> tuple[bytes, bytes, bytes]:
    """-> (my public key, my secret key, the peer's public key), refusing a secret file others can read."""
    import zmq.auth

    if me not in ROLES:
        raise UserError(f"a key role is one of {ROLES}, got {me!r}")
    peer = ROLES[1 - ROLES.index(me)]
    directory = Path(directory)
    mine, theirs = directory / f"{me}.key_secret", directory / f"{peer}.key"
    for path in (mine, theirs):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: make the keys with `embodied keys {directory}` and copy "
                                    f"{me}.key_secret and {peer}.key to the {me}'s computer")
    if mine.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{mine} can be read by other users (mode {oct(mine.stat().st_mode & 0o777)}): "
                              f"run `chmod 600 {mine}`")
    try:
        public, secret = zmq.auth.load_certificate(mine)
        peer_public, _ = zmq.auth.load_certificate(theirs)
    except (ValueError, OSError) as e:
        raise UserError(f"{directory}: not a CURVE key file ({e})") from e
    if secret is None:
        raise UserError(f"{mine} holds no secret key")
    return public, secret, peer_public


def is_loopback(address: str) -> bool:
    """Whether a ZeroMQ address is reachable only from this machine (tcp on a loopback host, ipc, inproc)."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = urlparse(address).hostname if address.startswith("tcp://") else None
    return host in LOOPBACK or (host or "").startswith("127.")


class Guard:
    """The robot's side: both sockets CURVE servers, a ZAP handler that admits only the policy's key and
    counts the refused ones. Without keys, refuses to bind anything but a loopback address."""

    def __init__(self, context, keys: str | Path | None, addresses: tuple[str, ...]):
        self.refused = 0
        self.auth = None
        if keys is None:
            if exposed := [a for a in addresses if not is_loopback(a)]:
                raise UserError(f"{exposed} can be reached from other machines: give keys (make them with "
                                "`embodied keys DIR`) or bind to 127.0.0.1; an unauthenticated action socket "
                                "lets anyone on the network drive the arm")
            return
        import zmq
        from zmq.auth.thread import ThreadAuthenticator

        if not zmq.has("curve"):
            raise UserError("this libzmq was built without CURVE: authenticated sockets are not available")
        self.public, self.secret, self.policy = load_keys(keys, "robot")
        self.auth = ThreadAuthenticator(context)
        self.auth.start()
        self.auth.configure_curve_callback("*", credentials_provider=self)

    def callback(self, domain: str, key: bytes) -> bool:  # ZAP: called for every CURVE handshake
        ok = key == self.policy
        self.refused += not ok
        return ok

    def serve(self, socket) -> None:
        if self.auth is not None:
            socket.curve_secretkey, socket.curve_publickey, socket.curve_server = self.secret, self.public, True

    def stop(self) -> None:
        if self.auth is not None:
            self.auth.stop()


def secure_client(socket, keys: str | Path | None) -> None:
    """The policy's side of a CURVE socket (nothing without keys)."""
    if keys is None:
        return
    public, secret, robot = load_keys(keys, "policy")
    socket.curve_secretkey, socket.curve_publickey, socket.curve_serverkey = secret, public, robot
