"""SSRF guard: which addresses archiver may connect to, checked where the connection is made.

Every TCP connection archiver opens (every redirect hop included) goes through the Guard, on
the lean path (``lean.Pool.connect``) and on httpx's (``transport.GuardedBackend``): the host
is mapped by ``--connect-to`` rules, resolved once (within the connect timeout: dns.py),
every resolved address is checked, and the socket is opened to the checked address itself,
so a DNS answer cannot change between the check and the connect (no rebinding window). TLS
still verifies and sends SNI for the URL's host (both paths pass that name to the TLS
handshake). Standard library only: the lean path never loads httpx or httpcore.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence

from archiver.errors import Blocked, ConfigError, ConnectFailed, NameNotFound
from archiver.fetch import dns
from archiver.validation import ConnectTo

# getaddrinfo's answers that the name does not exist (as opposed to "try again": EAI_AGAIN).
NAME_NOT_FOUND = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ResolverFn = Callable[[str, int], Sequence[str]]

# The IPv4 ranges refused, from IANA's special-purpose address registry (those not globally
# reachable) and the multicast and reserved blocks. Written out, not left to the Python
# version's ipaddress: 3.11 calls 192.88.99.0/24 global, for one.
_V4_REFUSED = tuple(ipaddress.IPv4Network(net) for net in (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # shared (CGNAT); Alibaba's metadata service is 100.100.100.200
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local; cloud metadata 169.254.169.254
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments: DS-Lite, NAT64 discovery, two anycasts
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.88.99.0/24",  # 6to4 relay anycast, deprecated (RFC 7526)
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the broadcast 255.255.255.255
))
# IPv6 is public only inside global unicast, 2000::/3: that alone refuses ::/8 (loopback,
# unspecified, IPv4-compatible, the local-use NAT64 64:ff9b:1::/48 of RFC 8215), 100::/64
# (discard), 5f00::/16 (segment routing), fc00::/7 (unique local), fe80::/10 (link-local),
# fec0::/10 (site-local, deprecated; public to Python 3.11) and ff00::/8 (multicast).
_V6_UNICAST = ipaddress.IPv6Network("2000::/3")
# ... and inside it, IANA's special-purpose ranges that are not globally reachable.
_V6_REFUSED = tuple(ipaddress.IPv6Network(net) for net in (
    "2001::/23",  # IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID, ...
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation (RFC 9637)
))
# Forms that carry an IPv4 address, checked as that address (IPv4-mapped is ipv4_mapped).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix, RFC 6052
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def is_public_address(ip: IPAddress) -> bool:
    """True when ``ip`` is globally routable unicast: not in a refused range above, looking
    through IPv4-mapped, NAT64 (64:ff9b::/96) and 6to4 forms to the IPv4 address they carry.
    Python's own view (``is_global`` and friends) is asked too, so it can only refuse more."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _SIX_TO_FOUR and ip.sixtofour is not None:
            return is_public_address(ip.sixtofour)
        if ip not in _V6_UNICAST or any(ip in net for net in _V6_REFUSED):
            return False
    elif any(ip in net for net in _V4_REFUSED):
        return False
    return bool(ip.is_global) and not (
        ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local
        or ip.is_unspecified or ip.is_private
    )


class Guard:
    """The connection policy: connect-to overrides, then resolution and the address check."""

    def __init__(
        self,
        allow_private: Iterable[str] = (),
        connect_to: Iterable[str] = (),
        resolver: ResolverFn | None = None,
    ) -> None:
        try:
            self.allowed: tuple[IPNetwork, ...] = tuple(
                ipaddress.ip_network(c, strict=False) for c in allow_private
            )
        except ValueError as exc:
            raise ConfigError(f"bad --allow-private CIDR: {exc}") from exc
        self.rules: tuple[ConnectTo, ...] = tuple(ConnectTo.parse(r) for r in connect_to)
        self._resolve = resolver or system_resolve

    def target(self, host: str, port: int) -> tuple[str, int]:
        """Where a connection for ``host:port`` really goes, after connect-to rules."""
        bare = host.strip("[]")
        for rule in self.rules:
            if rule.applies(bare, port):
                return rule.target_host or bare, rule.target_port or port
        return bare, port

    def allows(self, ip: IPAddress) -> bool:
        if any(ip in net for net in self.allowed if net.version == ip.version):
            return True
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        if mapped is not None and any(mapped in net for net in self.allowed if net.version == 4):
            return True
        return is_public_address(ip)

    def resolve(self, host: str, port: int, timeout: float | None) -> list[str]:
        """The checked addresses to connect to for ``host:port`` (after connect-to mapping is
        applied by the caller), looked up within ``timeout`` seconds (None: no bound) on a
        lookup thread (dns.py) unless ``host`` is a numeric address. Raises Blocked when any
        resolved address is not allowed (a name with one private answer is refused whole),
        NameNotFound or ConnectFailed when it does not resolve, TimedOut when the lookup did
        not answer in time."""
        if timeout is None or _numeric(host):
            addresses = self._resolve(host, port)
        else:
            addresses = dns.LOOKUPS.resolve(self._resolve, host, port, max(0.001, timeout))
        if not addresses:
            raise ConnectFailed(f"{host} did not resolve", host=host)
        checked: list[str] = []
        for text in addresses:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.allows(ip):
                raise Blocked(f"{host} resolves to non-public address {ip}", host=host,
                              address=str(ip))
            checked.append(str(ip))
        return checked

    def check_url_host(self, host: str, port: int, timeout: float | None) -> list[str]:
        """Resolve and check the host of a URL as the connection would (connect-to applied)."""
        thost, tport = self.target(host, port)
        return self.resolve(thost, tport, timeout)


def _numeric(host: str) -> bool:
    """True for an IPv4 or IPv6 address written as one (the test is skipped for what ends in
    a letter; the odd numeric forms, ``2130706433``, go to a lookup thread)."""
    if not (host[-1:].isdigit() or ":" in host):
        return False
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def system_resolve(host: str, port: int) -> Sequence[str]:
    """All addresses of ``host`` from the system resolver (numeric forms like ``2130706433``,
    ``0x7f000001`` and ``0177.0.0.1`` are resolved as inet_aton reads them)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in NAME_NOT_FOUND:
            raise NameNotFound(f"cannot resolve {host}: {exc.strerror}", host=host) from exc
        raise ConnectFailed(f"cannot resolve {host}: {exc}", host=host) from exc
    except UnicodeError as exc:
        raise ConnectFailed(f"cannot resolve {host}: {exc}", host=host) from exc
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = str(sockaddr[0])
        if addr not in seen:
            seen.append(addr)
    return seen
