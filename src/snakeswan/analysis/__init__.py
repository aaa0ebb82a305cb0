"""Seeing the negotiation (issue 12): explanations of trace records in the terms of the references
(cookies, SA offer, KE/nonce, NAT-D, ID+HASH, Quick Mode HASH(1..3), Transaction...), sequence
diagrams of an IKE SA's life, and offline analysis of captures.

Pure code over trace records, log lines and capture bytes: no sockets, no clock, no files opened
here (the CLI reads them). It may use ``wire``, ``crypto``, ``config`` and ``ike``; only ``cli``
uses it.
"""
