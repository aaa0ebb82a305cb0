"""A RADIUS client for XAUTH (RFC 2865 Access-Request with User-Name and User-Password), over
pyrad. Blocking: the daemon runs :meth:`RadiusClient.authenticate` in a worker thread and hands the
answer to the engine (:meth:`~snakeswan.ike.engine.Engine.xauth_verdict`)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pyrad.packet
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary

from snakeswan.config.model import RadiusConfig

# The few RFC 2865/2869 attributes we send or read (pyrad needs a dictionary; FreeRADIUS's own
# files use syntax pyrad does not read).
DICTIONARY = """\
ATTRIBUTE	User-Name		1	string
ATTRIBUTE	User-Password		2	string
ATTRIBUTE	NAS-IP-Address		4	ipaddr
ATTRIBUTE	Reply-Message		18	string
ATTRIBUTE	NAS-Identifier		32	string
ATTRIBUTE	Message-Authenticator	80	octets
"""


@dataclass(frozen=True, slots=True)
class RadiusAnswer:
    ok: bool
    reason: str


class RadiusClient:
    def __init__(self, config: RadiusConfig) -> None:
        self.config = config
        self._client = Client(
            server=config.address,
            authport=config.port,
            secret=config.secret,
            dict=Dictionary(io.StringIO(DICTIONARY)),
        )
        self._client.timeout = config.timeout
        self._client.retries = config.retries + 1

    def authenticate(self, user: str, password: bytes) -> RadiusAnswer:
        """Access-Request for ``user``: accepted, rejected, or no answer (a failure, fail closed)."""
        request = self._client.CreateAuthPacket(
            code=pyrad.packet.AccessRequest, User_Name=user, NAS_Identifier=self.config.nas_identifier
        )
        request["User-Password"] = request.PwCrypt(password)
        request.add_message_authenticator()
        try:
            reply = self._client.SendPacket(request)
        except Timeout:
            return RadiusAnswer(
                False, f"RADIUS server {self.config.address}:{self.config.port} did not answer"
            )
        except OSError as e:
            return RadiusAnswer(
                False, f"RADIUS server {self.config.address}:{self.config.port}: {e.strerror}"
            )
        if reply.code == pyrad.packet.AccessAccept:
            return RadiusAnswer(True, "RADIUS Access-Accept")
        return RadiusAnswer(False, "RADIUS Access-Reject")
