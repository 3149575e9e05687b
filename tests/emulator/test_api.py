"""The emulator's API semantics over raw HTTP: auth, paging rules, custom fields, subscribers,
imports, rate limits, faults, the control API, persistence and seeding."""

from __future__ import annotations

import base64
import gc
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from cmtoolkit import people as synthetic_people
from cmtoolkit.emulator import Emulator, FaultSpecError, parse_faults
from cmtoolkit.emulator.server import FREEZE_STEP


class Http:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.url = emu.base_url
        self.s = requests.Session()
        self.s.auth = (emu.api_key, "x")
        self.lid = emu.list_ids[0]
        self.cid = emu.client_id

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.s.get(self.url + path, params=params)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.s.post(self.url + path, json=body)

    def put(self, path: str, body: Any, **params: Any) -> requests.Response:
        return self.s.put(self.url + path, json=body, params=params)

    def add(self, email: str, **extra: Any) -> requests.Response:
        return self.post(
            f"/subscribers/{self.lid}.json",
            {"EmailAddress": email, "ConsentToTrack": "Yes", **extra},
        )

    def one(self, email: str) -> dict[str, Any]:
        r = self.get(f"/subscribers/{self.lid}.json", email=email)
        assert r.status_code == 200, r.text
        return r.json()

    def fields(self, email: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for cf in self.one(email)["CustomFields"]:
            out.setdefault(cf["Key"], []).append(cf["Value"])
        return out

    def imp(self, rows: list[dict[str, Any]], resubscribe: bool = False) -> requests.Response:
        return self.post(
            f"/subscribers/{self.lid}/import.json",
            {"Subscribers": rows, "Resubscribe": resubscribe},
        )


@pytest.fixture
def http(emulator: Emulator) -> Http:
    return Http(emulator)


def err(r: requests.Response) -> tuple[int, int]:
    return r.status_code, r.json()["Code"]


# --- auth -----------------------------------------------------------------------------------------


def test_api_key_auth_codes(http: Http) -> None:
    url = http.url + "/clients.json"
    assert err(requests.get(url)) == (401, 50)
    assert err(requests.get(url, headers={"Authorization": "Basic !!!"})) == (401, 50)
    assert err(requests.get(url, headers={"Authorization": "Digest x"})) == (401, 50)
    assert err(requests.get(url, auth=("wrong", "x"))) == (401, 100)
    assert requests.get(url, auth=(http.emu.api_key, "anything")).status_code == 200
    client_key = http.get(f"/clients/{http.cid}.json").json()["ApiKey"]
    token = base64.b64encode(f"{client_key}:x".encode()).decode()
    assert requests.get(url, headers={"Authorization": f"Basic {token}"}).status_code == 200


def test_unknown_ids(http: Http) -> None:
    assert err(http.get("/lists/" + "0" * 32 + ".json")) == (401, 101)
    assert err(http.get("/lists/" + "0" * 32 + "/active.json")) == (401, 101)
    assert err(http.get("/clients/" + "0" * 32 + "/lists.json")) == (401, 102)
    assert err(http.get("/segments/" + "0" * 32 + ".json")) == (400, 271)
    r = http.get("/nothing/here.json")
    assert r.status_code == 404 and r.content == b""


def test_oauth_token_errors_and_codes(emulator: Emulator) -> None:
    origin = emulator.origin
    app = emulator.oauth_app
    bad = requests.post(origin + "/oauth/token", data={"grant_type": "password"})
    assert bad.status_code == 400 and bad.json()["error"] == "unsupported_grant_type"
    page = requests.get(origin + "/oauth", params={"client_id": "nope", "redirect_uri": "x"})
    assert page.status_code == 400 and "unknown_client" in page.text
    page = requests.get(
        origin + "/oauth",
        params={"client_id": app.client_id, "redirect_uri": "http://evil.example/cb"},
    )
    assert page.status_code == 400 and "invalid_redirect_uri" in page.text
    denied = requests.post(
        origin + "/oauth",
        data={
            "client_id": app.client_id,
            "redirect_uri": app.redirect_uri,
            "state": "s1",
            "decision": "deny",
        },
        allow_redirects=False,
    )
    assert denied.status_code == 302
    assert (
        "error=access_denied" in denied.headers["Location"]
        and "state=s1" in denied.headers["Location"]
    )
    tokens = emulator.issue_token(app.client_id)
    hdr = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(emulator.base_url + "/clients.json", headers=hdr).status_code == 200
    emulator.expire(tokens["access_token"])
    assert err(requests.get(emulator.base_url + "/clients.json", headers=hdr)) == (401, 121)


# --- paging ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"page": "0"}, 800),
        ({"page": "x"}, 800),
        ({"pagesize": "9"}, 801),
        ({"pagesize": "1001"}, 801),
        ({"orderfield": "state"}, 802),
        ({"orderdirection": "up"}, 803),
        ({"date": "yesterday"}, 800),
    ],
)
def test_paging_errors(http: Http, params: dict[str, str], code: int) -> None:
    assert err(http.get(f"/lists/{http.lid}/active.json", **params)) == (400, code)


def test_paging_rules(http: Http) -> None:
    path = f"/lists/{http.lid}/active.json"
    body = http.get(path, PageSize="10", ORDERFIELD="NAME", OrderDirection="DESC").json()
    assert (body["PageSize"], body["ResultsOrderedBy"], body["OrderDirection"]) == (
        10,
        "name",
        "desc",
    )
    total = body["TotalNumberOfRecords"]
    assert body["NumberOfPages"] == -(-total // 10)
    assert "ConsentToTrack" not in body["Results"][0]
    for value in ("True", "true"):
        assert (
            "ConsentToTrack" in http.get(path, includetrackingpreference=value).json()["Results"][0]
        )
    assert (
        "ConsentToTrack"
        not in http.get(path, includetrackingpreference="False").json()["Results"][0]
    )
    past = http.get(path, page=999, pagesize=10).json()
    assert (past["Results"], past["PageNumber"], past["RecordsOnThisPage"]) == ([], 999, 0)
    # every page together, in order, without overlap
    emails = []
    for page in range(1, body["NumberOfPages"] + 1):
        results = http.get(path, page=page, pagesize=10).json()["Results"]
        emails += [r["EmailAddress"] for r in results]
    assert emails == sorted(emails, key=str.lower) and len(set(emails)) == total


def test_date_filter_is_on_the_status_date(http: Http) -> None:
    path = f"/lists/{http.lid}/active.json"
    all_active = http.get(path).json()["TotalNumberOfRecords"]
    http.emu.advance(400 * 86400)  # far past every seeded date
    since = http.get("/systemdate.json").json()["SystemDate"]
    assert http.get(path, date=since).json()["TotalNumberOfRecords"] == 0
    assert http.add("fresh@example.com", Name="Fresh").status_code == 201
    got = http.get(path, date=since[:10]).json()
    assert [r["EmailAddress"] for r in got["Results"]] == ["fresh@example.com"]
    assert http.get(path).json()["TotalNumberOfRecords"] == all_active + 1


def test_empty_selection_has_no_pages(emulator_factory: Any) -> None:
    emu = emulator_factory(seed_size=0)
    assert emu.list_ids == []  # size 0: one client, no lists
    http = Http.__new__(Http)
    s = requests.Session()
    s.auth = (emu.api_key, "x")
    assert s.get(emu.base_url + "/clients.json").json()[0]["ClientID"] == emu.client_id
    lid = s.post(f"{emu.base_url}/lists/{emu.client_id}.json", json={"Title": "New"}).json()
    body = s.get(f"{emu.base_url}/lists/{lid}/active.json").json()
    assert (body["TotalNumberOfRecords"], body["NumberOfPages"], body["Results"]) == (0, 0, [])
    del http


def test_suppression_list_paging(http: Http) -> None:
    path = f"/clients/{http.cid}/suppressionlist.json"
    before = http.get(path, pagesize=10).json()["TotalNumberOfRecords"]
    r = http.post(f"/clients/{http.cid}/suppress.json", {"EmailAddresses": ["s@example.com"]})
    assert r.status_code == 200
    body = http.get(path, pagesize=10, orderfield="date", orderdirection="desc").json()
    assert body["TotalNumberOfRecords"] == before + 1
    assert body["Results"][0]["EmailAddress"] == "s@example.com"
    assert http.put(f"/clients/{http.cid}/unsuppress.json", None, email="s@example.com").ok
    assert http.get(path, pagesize=10).json()["TotalNumberOfRecords"] == before


# --- custom fields --------------------------------------------------------------------------------


def test_custom_field_management(http: Http) -> None:
    base = f"/lists/{http.lid}/customfields"
    new = http.post(base + ".json", {"FieldName": "Favourite Colour", "DataType": "Text"})
    assert (new.status_code, new.json()) == (201, "[FavouriteColour]")
    again = {"FieldName": "favourite colour", "DataType": "Text"}
    assert err(http.post(base + ".json", again)) == (400, 255)
    assert err(
        http.post(base + ".json", {"FieldName": "x", "DataType": "Text", "Options": ["a"]})
    ) == (400, 256)
    assert err(http.post(base + ".json", {"FieldName": "y", "DataType": "MultiSelectOne"})) == (
        400,
        257,
    )
    assert err(http.post(base + ".json", {"FieldName": "z", "DataType": "Blob"})) == (400, 259)
    many = http.post(
        base + ".json",
        {"FieldName": "Segments", "DataType": "MultiSelectMany", "Options": ["a", "b"]},
    )
    assert many.json() == "[Segments]"
    assert err(http.put(base + "/Segments/options.json", {"Options": ["c"]})) == (400, 253)
    key = quote("[Segments]", safe="")
    r = http.put(f"{base}/{key}/options.json", {"Options": ["c"], "KeepExistingOptions": True})
    assert r.status_code == 200
    options = {f["FieldName"]: f["FieldOptions"] for f in http.get(base + ".json").json()}
    assert options["Segments"] == ["a", "b", "c"]
    http.put(f"{base}/{key}/options.json", {"Options": ["c", "d"], "KeepExistingOptions": False})
    options = {f["FieldName"]: f["FieldOptions"] for f in http.get(base + ".json").json()}
    assert options["Segments"] == ["c", "d"]
    assert http.s.delete(f"{http.url}{base}/{key}.json").status_code == 200
    assert "Segments" not in {f["FieldName"] for f in http.get(base + ".json").json()}


def test_custom_field_values(http: Http) -> None:
    http.add(
        "cf@example.com",
        CustomFields=[
            {"Key": "loyalty points", "Value": "12"},  # FieldName
            {"Key": "[birthday]", "Value": "1990/02/03"},  # bracketed key
            {"Key": "usstate", "Value": "Texas"},  # bare tag of "us state"
            {"Key": "interests", "Value": "Music"},
            {"Key": "interests", "Value": "travel"},  # option matched case-insensitively
            {"Key": "interests", "Value": "Knitting"},  # not an option: ignored
            {"Key": "no such field", "Value": "ignored"},
            {"Key": "website", "Value": "x" * 251},  # too long: ignored
        ],
    )
    assert http.fields("cf@example.com") == {
        "loyalty points": ["12"],
        "birthday": ["1990-02-03"],
        "interests": ["Music", "Travel"],
        "us state": ["Texas"],
    }
    http.imp(
        [
            {
                "EmailAddress": "cf@example.com",
                "CustomFields": [
                    {"Key": "loyalty points", "Value": "lots"},  # not a number: ignored
                    {"Key": "birthday", "Value": "1899-12-31"},  # out of range: ignored
                    {"Key": "interests", "Value": "Sports"},  # replaces the values
                    {"Key": "us state", "Value": "", "Clear": True},
                ],
            }
        ]
    )
    assert http.fields("cf@example.com") == {
        "loyalty points": ["12"],
        "birthday": ["1990-02-03"],
        "interests": ["Sports"],
    }
    http.imp(
        [
            {
                "EmailAddress": "cf@example.com",
                "CustomFields": [
                    {"Key": "interests", "Value": "Music"},
                    {"Key": "interests", "Value": "Sports"},
                ],
            }
        ]
    )
    http.imp(
        [
            {
                "EmailAddress": "cf@example.com",
                "CustomFields": [{"Key": "interests", "Value": "Sports", "Clear": True}],
            }
        ]
    )
    assert http.fields("cf@example.com")["interests"] == ["Music"]


def test_an_import_reads_every_row_alike_whatever_its_rows_repeat(http: Http) -> None:
    """An import resolves each key and normalises each value once per request: rows that repeat
    a key or value in another spelling, or follow a row whose value was ignored, still get
    exactly what they would get alone."""
    rows = [
        {
            "EmailAddress": "r1@example.com",
            "CustomFields": [
                {"Key": "interests", "Value": "music"},
                {"Key": "interests", "Value": "Knitting"},  # not an option: ignored
                {"Key": "loyalty points", "Value": "12.0"},
            ],
        },
        {
            "EmailAddress": "r2@example.com",
            "CustomFields": [
                {"key": "[Interests]", "value": "MUSIC"},  # other spellings of key and value
                {"Key": "Interests", "Value": "travel"},
                {"Key": "loyalty points", "Value": "12"},
                {"Key": "loyalty points", "Value": "lots"},  # not a number: ignored
            ],
        },
        {
            "EmailAddress": "r3@example.com",
            "CustomFields": [
                {"Key": "interests", "Value": "Travel"},
                {"Key": "interests", "Value": "Music"},  # stored in the field's option order
                {"Key": "interests", "Value": "travel", "Clear": True},
                {"Key": "loyalty points", "Value": "12.0"},
            ],
        },
    ]
    assert http.imp(rows).status_code == 201
    assert http.fields("r1@example.com") == {"interests": ["Music"], "loyalty points": ["12.0"]}
    assert http.fields("r2@example.com") == {
        "interests": ["Music", "Travel"],
        "loyalty points": ["12"],
    }
    assert http.fields("r3@example.com") == {"interests": ["Music"], "loyalty points": ["12.0"]}
    for row in rows:  # the same rows one at a time give the same values
        http.imp([{**row, "EmailAddress": "alone-" + row["EmailAddress"]}])
        alone = http.fields("alone-" + row["EmailAddress"])
        assert alone == http.fields(row["EmailAddress"])


# --- subscribers ----------------------------------------------------------------------------------


def test_add_update_unsubscribe_delete(http: Http) -> None:
    r = http.add("Mixed.Case@Example.com", Name="Mixed")
    assert (r.status_code, r.json()) == (201, "Mixed.Case@Example.com")
    first = http.one("mixed.case@example.com")
    assert first["EmailAddress"] == "Mixed.Case@Example.com"  # stored as first given
    assert first["Date"] == first["ListJoinedDate"]
    assert err(http.post(f"/subscribers/{http.lid}.json", {"EmailAddress": "a@example.com"})) == (
        400,
        214,
    )
    assert err(http.add("a@example.com", ConsentToTrack="maybe")) == (400, 215)
    assert err(http.add("not-an-email")) == (400, 1)
    assert err(http.get(f"/subscribers/{http.lid}.json", email="nobody@example.com")) == (400, 203)
    assert err(
        http.put(f"/subscribers/{http.lid}.json", {"ConsentToTrack": "No"}, email="x@example.com")
    ) == (400, 203)
    r = http.put(
        f"/subscribers/{http.lid}.json",
        {"EmailAddress": "renamed@example.com", "Name": "Renamed", "ConsentToTrack": "No"},
        email="mixed.case@example.com",
    )
    assert r.status_code == 200 and r.content == b""
    assert http.one("renamed@example.com")["Name"] == "Renamed"
    http.emu.advance(60)
    assert http.post(
        f"/subscribers/{http.lid}/unsubscribe.json", {"EmailAddress": "renamed@example.com"}
    ).ok
    gone = http.one("renamed@example.com")
    assert gone["State"] == "Unsubscribed" and gone["Date"] > gone["ListJoinedDate"]
    assert err(http.add("renamed@example.com")) == (400, 206)
    assert http.add("renamed@example.com", Resubscribe=True).status_code == 201
    assert http.one("renamed@example.com")["State"] == "Active"
    assert http.s.delete(
        f"{http.url}/subscribers/{http.lid}.json", params={"email": "renamed@example.com"}
    ).ok
    assert http.one("renamed@example.com")["State"] == "Deleted"
    listed = http.get(f"/lists/{http.lid}/deleted.json").json()["Results"]
    assert "renamed@example.com" in [r["EmailAddress"] for r in listed]
    memberships = http.get(f"/clients/{http.cid}/listsforemail.json", email="renamed@example.com")
    assert [m["SubscriberState"] for m in memberships.json()] == ["Deleted"]


# --- imports --------------------------------------------------------------------------------------


def test_import_limits(http: Http) -> None:
    assert err(http.imp([])) == (400, 212)
    rows = [{"EmailAddress": f"p{i}@example.com"} for i in range(1001)]
    assert err(http.imp(rows)) == (400, 209)
    ok = http.imp(rows[:1000])
    assert ok.status_code == 201 and ok.json()["TotalNewSubscribers"] == 1000


def test_import_resubscribe_and_suppression(http: Http) -> None:
    lst = http.emu.account.clients[0].lists[0]
    by_state = {}
    for row, state in enumerate(lst.states):
        by_state.setdefault(state, lst.emails[row])
    unsub, bounced, deleted = by_state[2], by_state[3], by_state[4]
    client = http.emu.account.clients[0]
    client.suppress("blocked@example.com", "Manually Suppressed", 0)
    rows = [
        {"EmailAddress": e, "Name": "Updated"}
        for e in (unsub, bounced, deleted, "blocked@example.com", "ok@example.com")
    ]
    r = http.imp(rows)
    assert err(r) == (400, 210)
    data = r.json()["ResultData"]
    codes = {f["EmailAddress"]: f["Code"] for f in data["FailureDetails"]}
    assert codes == {unsub: 206, bounced: 207, deleted: 205, "blocked@example.com": 204}
    assert (data["TotalNewSubscribers"], data["TotalExistingSubscribers"]) == (1, 3)
    assert http.one(unsub)["State"] == "Unsubscribed" and http.one(unsub)["Name"] == "Updated"
    assert err(http.get(f"/subscribers/{http.lid}.json", email="blocked@example.com")) == (400, 203)
    r = http.imp(rows, resubscribe=True)
    assert r.status_code == 201 and r.json()["FailureDetails"] == []
    assert {http.one(e)["State"] for e in (unsub, bounced, deleted, "blocked@example.com")} == {
        "Active"
    }
    assert "blocked@example.com" not in client.suppression


# --- rate limit, faults ---------------------------------------------------------------------------


def test_rate_limit_headers(http: Http) -> None:
    http.emu.set_rate_limit(2, window=10, headers=True)
    first = http.get("/clients.json")
    assert first.headers["X-RateLimit-Remaining"] == "1"
    http.get("/clients.json")
    limited = http.get("/clients.json")
    assert (limited.status_code, limited.json()) == (
        429,
        {"Code": 429, "Message": "Rate limit exceeded"},
    )
    assert limited.headers["X-RateLimit-Limit"] == "2"
    assert int(limited.headers["X-RateLimit-Reset"]) == 10
    http.emu.advance(10)
    assert http.get("/clients.json").ok
    http.emu.set_rate_limit(1, window=10, headers=False)
    http.get("/clients.json")
    bare = http.get("/clients.json")
    assert bare.status_code == 429 and "X-RateLimit-Reset" not in bare.headers


def test_faults_are_deterministic_and_scoped(emulator_factory: Any) -> None:
    def run(seed: int) -> list[int]:
        emu = emulator_factory(seed_size=20, seed=seed, faults="500:p=0.5,method=GET")
        s = requests.Session()
        s.auth = (emu.api_key, "x")
        return [s.get(emu.base_url + "/clients.json").status_code for _ in range(20)]

    assert run(3) == run(3)
    assert set(run(3)) == {200, 500}
    emu = emulator_factory(seed_size=20, faults="503:every=2,path=/lists/*")
    s = requests.Session()
    s.auth = (emu.api_key, "x")
    lid = emu.list_ids[0]
    assert [s.get(f"{emu.base_url}/lists/{lid}.json").status_code for _ in range(4)] == [
        200,
        503,
        200,
        503,
    ]
    assert all(s.get(emu.base_url + "/clients.json").ok for _ in range(3))
    emu.set_faults("429-bare:at=2+3;500:first=1")
    got = [s.get(emu.base_url + "/clients.json") for _ in range(4)]
    assert [g.status_code for g in got] == [500, 429, 429, 200]
    assert "X-RateLimit-Limit" not in got[1].headers


def test_drop_truncate_and_slow_at_the_socket(emulator: Emulator) -> None:
    s = requests.Session()
    s.auth = (emulator.api_key, "x")
    emulator.set_faults("drop:first=1")
    with pytest.raises(requests.ConnectionError):
        s.get(emulator.base_url + "/clients.json")
    emulator.set_faults("truncate:first=1")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        s.get(emulator.base_url + "/clients.json")
    emulator.set_faults("slow:first=1,delay=0.3")
    with pytest.raises(requests.Timeout):
        s.get(emulator.base_url + "/clients.json", timeout=0.1)
    assert s.get(emulator.base_url + "/clients.json").ok


def test_fault_spec_parsing() -> None:
    rules = parse_faults("429:p=0.5,reset=7; slow:delay=0.2,path=/a+/b ;expire:after=3")
    assert [r.kind for r in rules] == ["429", "slow", "expire"]
    assert rules[0].reset == 7 and rules[1].paths == ("/a", "/b") and rules[2].times == 1
    for bad in ("boom", "500:p=2", "500:every", "500:colour=red"):
        with pytest.raises(FaultSpecError):
            parse_faults(bad)


# --- control API, persistence, seeding -----------------------------------------------------------


def test_control_api(emulator: Emulator) -> None:
    ctl = emulator.origin + "/_emulator/"
    state = requests.get(ctl + "state").json()
    assert state["clients"][0]["Lists"][0]["Subscribers"] == 200
    assert requests.post(ctl + "faults", json={"spec": "500:first=1"}).ok
    s = requests.Session()
    s.auth = (emulator.api_key, "x")
    assert s.get(emulator.base_url + "/clients.json").status_code == 500
    assert requests.post(ctl + "faults", json={"spec": "nonsense"}).status_code == 400
    assert requests.delete(ctl + "faults").ok
    tokens = requests.post(ctl + "token", json={}).json()
    assert requests.post(ctl + "revoke", json={"token": tokens["access_token"]}).json() == {
        "revoked": 1
    }
    hdr = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert err(requests.get(emulator.base_url + "/clients.json", headers=hdr)) == (401, 122)
    before = requests.post(ctl + "clock", json={"advance": 0}).json()["now"]
    assert requests.post(ctl + "clock", json={"advance": 100}).json()["now"] >= before + 100
    reseeded = requests.post(ctl + "seed", json={"seed_size": 30}).json()
    assert reseeded["clients"][0]["Lists"][0]["Subscribers"] == 30
    assert requests.post(ctl + "ratelimit", json={"limit": 1}).ok
    s.get(emulator.base_url + "/clients.json")
    assert s.get(emulator.base_url + "/clients.json").status_code == 429
    assert requests.delete(ctl + "ratelimit").ok


def test_state_file_round_trip(tmp_path: Path, emulator_factory: Any) -> None:
    path = tmp_path / "state.json"
    emu = emulator_factory(seed_size=100, state_file=str(path))
    http = Http(emu)
    http.add("kept@example.com", Name="Kept", CustomFields=[{"Key": "interests", "Value": "Music"}])
    tokens = emu.issue_token(emu.oauth_app.client_id)
    emu.stop()
    again = emulator_factory(seed_size=5, state_file=str(path))  # the file wins over seeding
    http2 = Http(again)
    assert again.list_ids == emu.list_ids
    assert http2.fields("kept@example.com") == {"interests": ["Music"]}
    hdr = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(again.base_url + "/clients.json", headers=hdr).ok
    assert requests.post(again.origin + "/_emulator/save", json={}).json()["saved"] == str(path)


def test_seeding_is_deterministic_and_overlaps_profiles() -> None:
    a = Emulator(seed_size=300, seed=9, person_offset=1000)
    b = Emulator(seed_size=300, seed=9, person_offset=1000)
    assert a.account.subscribers(a.list_ids[0]).equals(b.account.subscribers(b.list_ids[0]))
    profiles = set(synthetic_people.people(9, 0, 1100).get_column("email").to_list())
    emails = set(a.account.subscribers(a.list_ids[0]).get_column("email").to_list())
    assert len(emails) == 300 and len(profiles & emails) == 100
    lst = a.account.clients[0].lists[0]
    counts = lst.state_counts()
    assert all(counts[s] > 0 for s in counts) and counts["Active"] > 200
    assert {f.data_type for f in lst.fields} == {
        "Text",
        "Number",
        "Date",
        "MultiSelectOne",
        "MultiSelectMany",
        "Country",
        "USState",
    }
    assert a.account.clients[0].suppression
    assert [x.title for x in a.account.clients[0].lists] == ["Newsletter", "Customers", "Events"]
    assert any(not n.isascii() for n in lst.names)


def test_prefetched_pages_match_and_die_with_writes(emulator_factory: Any) -> None:
    emu = emulator_factory(seed_size=100, prefetch_pages=True)
    http = Http(emu)
    path = f"/lists/{http.lid}/active.json"
    first = [http.get(path, page=p, pagesize=10).json() for p in (1, 2, 3)]
    emu.prefetch_pages = False
    assert [http.get(path, page=p, pagesize=10).json() for p in (1, 2, 3)] == first
    emu.prefetch_pages = True
    http.get(path, page=1, pagesize=10)  # pre-renders page 2
    http.add("aaaa@example.com")  # sorts first: shifts every page
    assert http.get(path, page=2, pagesize=10).json()["Results"][0] == first[0]["Results"][-1]


@pytest.mark.parametrize("freeze_growth", [False, True])
def test_a_served_emulator_takes_what_imports_add_out_of_the_cyclic_gc(
    emulator_factory: Any, freeze_growth: bool
) -> None:
    """With ``freeze_growth`` (``serve``) the columns an import grows are frozen every
    FREEZE_STEP rows, so full collections stop walking them; an in-process emulator leaves the
    GC of its host process alone."""
    emu = emulator_factory(seed_size=1, freeze_growth=freeze_growth)
    http = Http(emu)
    column = emu.account.clients[0].lists[0].emails
    try:
        for start in range(0, FREEZE_STEP, 1000):
            rows = [{"EmailAddress": f"g{n}@example.com"} for n in range(start, start + 1000)]
            assert http.imp(rows).status_code == 201
        assert len(column) == FREEZE_STEP + 1
        assert any(o is column for o in gc.get_objects()) is not freeze_growth
    finally:
        gc.unfreeze()


def test_page_cache_keeps_pages_within_its_budget_until_a_write(emulator_factory: Any) -> None:
    emu = emulator_factory(seed_size=100, page_cache_bytes=10**6)
    http = Http(emu)
    path = f"/lists/{http.lid}/active.json"
    first = [http.get(path, page=p, pagesize=10).json() for p in (1, 2, 3)]
    assert len(emu.api.pages) == 3
    assert [http.get(path, page=p, pagesize=10).json() for p in (1, 2, 3)] == first
    http.add("aaaa@example.com")  # sorts first: shifts every page
    assert http.get(path, page=2, pagesize=10).json()["Results"][0] == first[0]["Results"][-1]
    assert len(emu.api.pages) == 1  # the write dropped every page rendered before it

    emu.api.pages.budget = 1  # over budget: only the newest page is kept
    for p in (1, 2, 3):
        http.get(path, page=p, pagesize=10)
    assert len(emu.api.pages) == 1

    default = emulator_factory(seed_size=100)  # no budget: a served page is never kept
    http = Http(default)
    http.get(f"/lists/{http.lid}/active.json", page=1, pagesize=10)
    assert len(default.api.pages) == 0
