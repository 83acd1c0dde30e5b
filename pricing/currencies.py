"""The currencies amounts may be entered in: the active alphabetic codes of ISO 4217.

Shipped as data rather than read from a package, so the list changes only with a
release. A code outside it (``BTC``, a typo) has no exchange rate anywhere, and a use
case priced in it could never be counted in a portfolio total.
"""

# ISO 4217 List One (currencies and funds) as in force in 2026, with ZWG and XCG; codes
# since withdrawn (HRK, SLL, ZWL, ANG, BGN, CUC) are not in it. XTS (testing) and XXX
# (no currency) name no money and are left out.
_LIST_ONE = """
AED AFN ALL AMD AOA ARS AUD AWG AZN
BAM BBD BDT BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD
CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK
DJF DKK DOP DZD
EGP ERN ETB EUR
FJD FKP
GBP GEL GHS GIP GMD GNF GTQ GYD
HKD HNL HTG HUF
IDR ILS INR IQD IRR ISK
JMD JOD JPY
KES KGS KHR KMF KPW KRW KWD KYD KZT
LAK LBP LKR LRD LSL LYD
MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN
NAD NGN NIO NOK NPR NZD
OMR
PAB PEN PGK PHP PKR PLN PYG
QAR
RON RSD RUB RWF
SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL
THB TJS TMT TND TOP TRY TTD TWD TZS
UAH UGX USD USN UYI UYU UYW UZS
VED VES VND VUV
WST
XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA
YER
ZAR ZMW ZWG
"""
ISO_4217_CODES: frozenset[str] = frozenset(_LIST_ONE.split())


def normalise_currency(value: str) -> str:
    """A code as typed, made comparable: ``" usd"`` is ``USD``."""
    return value.strip().upper()
