"""IANA numbers for ISAKMP/IKEv1/IPsec DOI (RFC 2407, 2408, 2409, 3947, 3706, XAUTH/Mode Config drafts).

Payload fields hold plain ``int`` values, so a number we have no name for survives a decode/encode
round trip unchanged (DESIGN.md principle 9). These ``IntEnum`` classes give the known numbers names;
:func:`name_of` renders any value, known or not.
"""

from __future__ import annotations

from enum import IntEnum


def name_of(cls: type[IntEnum], value: int) -> str:
    """``cls(value).name`` when the value is known, else ``"<cls name>(<value>)"``."""
    try:
        return cls(value).name
    except ValueError:
        return f"{cls.__name__}({value})"


def known(cls: type[IntEnum], value: int) -> bool:
    try:
        cls(value)
    except ValueError:
        return False
    return True


class ExchangeType(IntEnum):
    """ISAKMP exchange types (RFC 2408 3.1, RFC 2409 appendix, Mode Config draft)."""

    NONE = 0
    BASE = 1
    IDENTITY_PROTECTION = 2  # IKE Main Mode
    AUTHENTICATION_ONLY = 3
    AGGRESSIVE = 4  # IKE Aggressive Mode
    INFORMATIONAL = 5
    TRANSACTION = 6  # Mode Config / XAUTH
    QUICK_MODE = 32
    NEW_GROUP_MODE = 33


class PayloadType(IntEnum):
    """ISAKMP payload types (RFC 2408 3.1, RFC 3947, draft-ietf-ipsec-nat-t-ike-02, Cisco fragmentation)."""

    NONE = 0
    SA = 1
    PROPOSAL = 2
    TRANSFORM = 3
    KE = 4
    ID = 5
    CERT = 6
    CR = 7
    HASH = 8
    SIG = 9
    NONCE = 10
    NOTIFICATION = 11
    DELETE = 12
    VENDOR_ID = 13
    ATTRIBUTE = 14  # Mode Config / XAUTH (draft-ietf-ipsec-isakmp-mode-cfg)
    SAK = 15
    SAT = 16
    KD = 17
    SEQ = 18
    POP = 19
    NAT_D = 20  # RFC 3947
    NAT_OA = 21  # RFC 3947
    NAT_D_DRAFT = 130  # draft-ietf-ipsec-nat-t-ike-02/03
    NAT_OA_DRAFT = 131
    FRAGMENT = 132  # Cisco IKE fragmentation


class Flag:
    """ISAKMP header flags."""

    ENCRYPTION = 0x01
    COMMIT = 0x02
    AUTH_ONLY = 0x04


class Doi(IntEnum):
    ISAKMP = 0
    IPSEC = 1


SIT_IDENTITY_ONLY = 0x01


class ProtocolId(IntEnum):
    """Protocol IDs in proposals, notifications and deletes (RFC 2407 4.4.1)."""

    ISAKMP = 1
    IPSEC_AH = 2
    IPSEC_ESP = 3
    IPCOMP = 4


class IkeTransformId(IntEnum):
    KEY_IKE = 1


class EspTransformId(IntEnum):
    """ESP transform IDs (RFC 2407 4.4.4, RFC 4106)."""

    DES_IV64 = 1
    DES = 2
    TRIPLE_DES = 3
    RC5 = 4
    IDEA = 5
    CAST = 6
    BLOWFISH = 7
    THREE_IDEA = 8
    DES_IV32 = 9
    RC4 = 10
    NULL = 11
    AES_CBC = 12
    AES_CTR = 13
    AES_CCM_8 = 14
    AES_CCM_12 = 15
    AES_CCM_16 = 16
    AES_GCM_8 = 18
    AES_GCM_12 = 19
    AES_GCM_16 = 20
    NULL_AUTH_AES_GMAC = 23
    CHACHA20_POLY1305 = 28  # RFC 7634; IKEv1 has no number of its own: IKEv2's, as the others


class AhTransformId(IntEnum):
    """AH transform IDs (RFC 2407 4.4.3, RFC 4868)."""

    MD5 = 2
    SHA = 3
    DES = 4
    SHA2_256 = 5
    SHA2_384 = 6
    SHA2_512 = 7


class IkeAttr(IntEnum):
    """Phase 1 (Oakley) SA attribute classes (RFC 2409 appendix A)."""

    ENCRYPTION_ALGORITHM = 1
    HASH_ALGORITHM = 2
    AUTHENTICATION_METHOD = 3
    GROUP_DESCRIPTION = 4
    GROUP_TYPE = 5
    GROUP_PRIME = 6
    GROUP_GENERATOR_ONE = 7
    GROUP_GENERATOR_TWO = 8
    GROUP_CURVE_A = 9
    GROUP_CURVE_B = 10
    LIFE_TYPE = 11
    LIFE_DURATION = 12
    PRF = 13
    KEY_LENGTH = 14
    FIELD_SIZE = 15
    GROUP_ORDER = 16


class IkeEncryption(IntEnum):
    """Phase 1 encryption algorithms (RFC 2409 appendix A, RFC 3602)."""

    DES_CBC = 1
    IDEA_CBC = 2
    BLOWFISH_CBC = 3
    RC5_R16_B64_CBC = 4
    TRIPLE_DES_CBC = 5
    CAST_CBC = 6
    AES_CBC = 7
    CAMELLIA_CBC = 8


class IkeHash(IntEnum):
    MD5 = 1
    SHA = 2
    TIGER = 3
    SHA2_256 = 4
    SHA2_384 = 5
    SHA2_512 = 6


class AuthMethod(IntEnum):
    """Phase 1 authentication methods (RFC 2409, XAUTH draft, RFC 4754)."""

    PRE_SHARED_KEY = 1
    DSS_SIGNATURES = 2
    RSA_SIGNATURES = 3
    RSA_ENCRYPTION = 4
    RSA_REVISED_ENCRYPTION = 5
    ECDSA_SHA256_P256 = 9
    ECDSA_SHA384_P384 = 10
    ECDSA_SHA512_P521 = 11
    HYBRID_INIT_RSA = 64221
    HYBRID_RESP_RSA = 64222
    HYBRID_INIT_DSS = 64223
    HYBRID_RESP_DSS = 64224
    XAUTH_INIT_PSK = 65001
    XAUTH_RESP_PSK = 65002
    XAUTH_INIT_DSS = 65003
    XAUTH_RESP_DSS = 65004
    XAUTH_INIT_RSA = 65005
    XAUTH_RESP_RSA = 65006
    XAUTH_INIT_RSA_ENCRYPTION = 65007
    XAUTH_RESP_RSA_ENCRYPTION = 65008
    XAUTH_INIT_RSA_REVISED_ENCRYPTION = 65009
    XAUTH_RESP_RSA_REVISED_ENCRYPTION = 65010


class DhGroup(IntEnum):
    """Diffie-Hellman group descriptions (RFC 2409, 3526, 5114, 5903, 8031)."""

    MODP_768 = 1
    MODP_1024 = 2
    MODP_1536 = 5
    MODP_2048 = 14
    MODP_3072 = 15
    MODP_4096 = 16
    MODP_6144 = 17
    MODP_8192 = 18
    ECP_256 = 19
    ECP_384 = 20
    ECP_521 = 21
    MODP_1024_160 = 22
    MODP_2048_224 = 23
    MODP_2048_256 = 24
    ECP_192 = 25
    ECP_224 = 26
    CURVE25519 = 31
    CURVE448 = 32


class LifeType(IntEnum):
    SECONDS = 1
    KILOBYTES = 2


class IpsecAttr(IntEnum):
    """Phase 2 SA attribute classes (RFC 2407 4.5)."""

    SA_LIFE_TYPE = 1
    SA_LIFE_DURATION = 2
    GROUP_DESCRIPTION = 3
    ENCAPSULATION_MODE = 4
    AUTHENTICATION_ALGORITHM = 5
    KEY_LENGTH = 6
    KEY_ROUNDS = 7
    COMPRESS_DICTIONARY_SIZE = 8
    COMPRESS_PRIVATE_ALGORITHM = 9
    ECN_TUNNEL = 10
    EXTENDED_SEQUENCE_NUMBER = 11


class EncapsulationMode(IntEnum):
    """Encapsulation modes (RFC 2407, RFC 3947 and draft-ietf-ipsec-nat-t-ike-00..03)."""

    TUNNEL = 1
    TRANSPORT = 2
    UDP_ENCAPSULATED_TUNNEL = 3
    UDP_ENCAPSULATED_TRANSPORT = 4
    UDP_ENCAPSULATED_TUNNEL_DRAFT = 61443
    UDP_ENCAPSULATED_TRANSPORT_DRAFT = 61444


class AuthAlgorithm(IntEnum):
    """IPsec authentication algorithms (RFC 2407 4.5, RFC 4868)."""

    HMAC_MD5 = 1
    HMAC_SHA = 2
    DES_MAC = 3
    KPDK = 4
    HMAC_SHA2_256 = 5
    HMAC_SHA2_384 = 6
    HMAC_SHA2_512 = 7
    HMAC_RIPEMD = 8
    AES_XCBC_MAC = 9


class IdType(IntEnum):
    """Identification types (RFC 2407 4.6.2.1)."""

    IPV4_ADDR = 1
    FQDN = 2
    USER_FQDN = 3
    IPV4_ADDR_SUBNET = 4
    IPV6_ADDR = 5
    IPV6_ADDR_SUBNET = 6
    IPV4_ADDR_RANGE = 7
    IPV6_ADDR_RANGE = 8
    DER_ASN1_DN = 9
    DER_ASN1_GN = 10
    KEY_ID = 11


class CertEncoding(IntEnum):
    """Certificate encodings (RFC 2408 3.9)."""

    PKCS7 = 1
    PGP = 2
    DNS_SIGNED_KEY = 3
    X509_SIGNATURE = 4
    X509_KEY_EXCHANGE = 5
    KERBEROS_TOKENS = 6
    CRL = 7
    ARL = 8
    SPKI = 9
    X509_ATTRIBUTE = 10
    RAW_RSA_KEY = 11
    HASH_URL_X509 = 12
    HASH_URL_BUNDLE = 13


class NotifyType(IntEnum):
    """Notify message types: errors (RFC 2408 3.14.1), status (RFC 2407 4.6.3, RFC 3706)."""

    INVALID_PAYLOAD_TYPE = 1
    DOI_NOT_SUPPORTED = 2
    SITUATION_NOT_SUPPORTED = 3
    INVALID_COOKIE = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_MINOR_VERSION = 6
    INVALID_EXCHANGE_TYPE = 7
    INVALID_FLAGS = 8
    INVALID_MESSAGE_ID = 9
    INVALID_PROTOCOL_ID = 10
    INVALID_SPI = 11
    INVALID_TRANSFORM_ID = 12
    ATTRIBUTES_NOT_SUPPORTED = 13
    NO_PROPOSAL_CHOSEN = 14
    BAD_PROPOSAL_SYNTAX = 15
    PAYLOAD_MALFORMED = 16
    INVALID_KEY_INFORMATION = 17
    INVALID_ID_INFORMATION = 18
    INVALID_CERT_ENCODING = 19
    INVALID_CERTIFICATE = 20
    CERT_TYPE_UNSUPPORTED = 21
    INVALID_CERT_AUTHORITY = 22
    INVALID_HASH_INFORMATION = 23
    AUTHENTICATION_FAILED = 24
    INVALID_SIGNATURE = 25
    ADDRESS_NOTIFICATION = 26
    NOTIFY_SA_LIFETIME = 27
    CERTIFICATE_UNAVAILABLE = 28
    UNSUPPORTED_EXCHANGE_TYPE = 29
    UNEQUAL_PAYLOAD_LENGTHS = 30
    CONNECTED = 16384
    RESPONDER_LIFETIME = 24576
    REPLAY_STATUS = 24577
    INITIAL_CONTACT = 24578
    R_U_THERE = 36136
    R_U_THERE_ACK = 36137
    UNITY_LOAD_BALANCE = 40501
    UNITY_GROUP_HASH = 40507


class ConfigAttr(IntEnum):
    """Mode Config and XAUTH attribute types (draft-ietf-ipsec-isakmp-mode-cfg-05, -xauth-06)."""

    INTERNAL_IP4_ADDRESS = 1
    INTERNAL_IP4_NETMASK = 2
    INTERNAL_IP4_DNS = 3
    INTERNAL_IP4_NBNS = 4
    INTERNAL_ADDRESS_EXPIRY = 5
    INTERNAL_IP4_DHCP = 6
    APPLICATION_VERSION = 7
    INTERNAL_IP6_ADDRESS = 8
    INTERNAL_IP6_NETMASK = 9
    INTERNAL_IP6_DNS = 10
    INTERNAL_IP6_NBNS = 11
    INTERNAL_IP6_DHCP = 12
    INTERNAL_IP4_SUBNET = 13
    SUPPORTED_ATTRIBUTES = 14
    INTERNAL_IP6_SUBNET = 15
    XAUTH_TYPE = 16520
    XAUTH_USER_NAME = 16521
    XAUTH_USER_PASSWORD = 16522
    XAUTH_PASSCODE = 16523
    XAUTH_MESSAGE = 16524
    XAUTH_CHALLENGE = 16525
    XAUTH_DOMAIN = 16526
    XAUTH_STATUS = 16527
    XAUTH_NEXT_PIN = 16528
    XAUTH_ANSWER = 16529
    UNITY_BANNER = 28672
    UNITY_SAVE_PASSWD = 28673
    UNITY_DEF_DOMAIN = 28674
    UNITY_SPLITDNS_NAME = 28675
    UNITY_SPLIT_INCLUDE = 28676
    UNITY_NATT_PORT = 28677
    UNITY_LOCAL_LAN = 28678
    UNITY_PFS = 28679
    UNITY_FW_TYPE = 28680
    UNITY_BACKUP_SERVERS = 28681
    UNITY_DDNS_HOSTNAME = 28682


class ConfigMessageType(IntEnum):
    """Attribute payload message types (Mode Config draft)."""

    REQUEST = 1
    REPLY = 2
    SET = 3
    ACK = 4


class IpProtocol(IntEnum):
    ANY = 0
    ICMP = 1
    TCP = 6
    UDP = 17
    ESP = 50
    AH = 51
    ICMPV6 = 58
