"""A diagnosis as LDAP would give it for the procedure lab's forest: dc9's serverReference is
lost, and dc1 (root, reporting) has no link from dc3. Used by tests and benchmarks alike."""

from __future__ import annotations

from bot.directory.model import Cause, Diagnosis, SourceDc, TargetDc

FOREST = "corp.example.com"
CONFIG_NC = "CN=Configuration,DC=corp,DC=example,DC=com"
SERVERS = "CN=Servers,CN=Default-First-Site-Name,CN=Sites," + CONFIG_NC
ROOT = f"dc1.{FOREST}"
REPORTER = f"dc2.{FOREST}"
MISSING = f"dc3.{FOREST}"
TARGET_GUID = "5d3b3c63-7c1c-4f7e-9a1e-2b2a4c6d8e10"


def seeded_diagnosis(target_guid: str = TARGET_GUID) -> Diagnosis:
    """What LDAP would say: dc9's serverReference is lost, dc3 has no link on dc1."""
    target = TargetDc(
        dsa_guid=target_guid,
        ntds_settings_dn=f"CN=NTDS Settings,CN=DC9,{SERVERS}",
        server_dn=f"CN=DC9,{SERVERS}",
        dns_host_name=f"dc9.{FOREST}",
        server_reference=None,
        computer_dn="CN=DC9,OU=Domain Controllers,DC=corp,DC=example,DC=com",
        computer_checked=True,
        user_account_control=0x82000,
        spns=(),
        expected_drs_spn=None,
    )
    return Diagnosis(
        forest=FOREST,
        cause=Cause.SERVER_REFERENCE_MISSING,
        target=target,
        root_dc=ROOT,
        root_dc_reason="the reporting DC, a DC of the forest root domain",
        reporting_dcs=(ROOT, REPORTER),
        unknown_reporting_dcs=(),
        links=(),
        missing_links=(
            SourceDc(
                MISSING,
                "0e6b1c1a-1b6f-4d55-8f59-8f5d0c0b0a01",
                f"CN=NTDS Settings,CN=DC3,{SERVERS}",
                f"CN=DC3,{SERVERS}",
            ),
        ),
        dead_dcs=(),
        configuration_nc=CONFIG_NC,
    )
