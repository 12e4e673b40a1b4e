"""OCMF (Open Charge Metering Format) signed readings: parse, verify, map onto registers.

An OCMF record is `OCMF|{payload}|{signature}`. The signed bytes are exactly the payload text
between the leading `OCMF|` and the last `|`, as received: they are kept as bytes and never
re-serialised, so what is checked and stored is exactly what the meter signed, and any other OCMF
verifier (the S.A.F.E. Transparenzsoftware, Chargy, ...) can check the stored record again.

Three steps, each usable alone, one module each:

- `record.parse_ocmf` splits the record, parses both JSON sections and the readings (`RD`),
  keeping every reading value as an exact `Decimal` in its own unit. It does not need a key.
- `verify.verify_ocmf` checks the ECDSA signature (`SA`, default `ECDSA-secp256r1-SHA256`) with
  a public key given as hex or base64 DER SubjectPublicKeyInfo, raw hex `x||y`, a SEC1 point or
  PEM.
- `OcmfRecord.register_readings` maps the import (`1-0:1.8.0`) and export (`1-0:2.8.0`) readings
  onto whole watt-hours; a value that is not a whole, non-negative number of Wh is refused.
- `values.ledger_values` turns a whole record into the fields of ONE ledger reading (meter
  serial `MS`, seq from the pagination `PG`, time, import and export rounded down to whole Wh,
  status flags), as the gateway ingests it (docs/ocmf.md, "Ingestion").

Every failure is an `OcmfError` (a `LedgerError`, in `errors`) with a stable `code`:

    OcmfError                    ocmf_error
     +-- OcmfMalformed           ocmf_malformed              not `OCMF|..|..`, bad JSON, bad SD
     +-- OcmfBadValue            ocmf_bad_value              a reading value or time is unusable
     +-- OcmfUnsupportedAlgorithm ocmf_unsupported_algorithm  `SA` is not ECDSA-<curve>-<SHA-2>
     +-- OcmfUnsupportedCurve    ocmf_unsupported_curve      secp192k1, unknown curves
     +-- OcmfBadKey              ocmf_bad_key                undecodable key, or not on SA's curve
     +-- OcmfBadSignature        ocmf_bad_signature          the signature does not verify
     +-- OcmfUnmappable          ocmf_unmappable             valid OCMF, but no ledger reading

The public key of `verify_ocmf` is parsed by the key codecs of `ledger.meters.keys`, the same
format parsers registration and ingestion use.
"""
