"""A workshop server restarted with the same access code continues its room:
who is seated and who waits, raised hands, the banner and who dismissed it,
extensions, used resume links; and its learners go on with a new lab host."""
from __future__ import annotations

import html
import re

import pytest
import requests

from web_support import TEST_LAB, serving
from workshop_support import act, api, csrf, join, me, seated, workshop_server


@pytest.fixture(scope="module")
def room():   # the uid slots of test_workshop_time's room, which is not up at the same time
    yield from serving(workshop_server("workshop-restart", uid_slot=0, capacity=1, max_minutes=60))


def test_a_restarted_server_continues_the_room(room):
    instructor = room.operator()
    ada = seated(room, "Ada")
    room.open_lab(ada)
    bob, r = join(room, "Bob")
    assert "number 1</strong> in the queue" in r.page
    ada.post(f"{room.url}/workshop/hand", data={"message": "stuck at step 2"}, headers=csrf(room, ada), timeout=10)
    instructor.post(f"{room.url}/workshop/broadcast", data={"text": "lunch at noon"},
                    headers=csrf(room, instructor), timeout=10).raise_for_status()
    banner = api(room, instructor)["workshop"]["banner"]
    ada.post(f"{room.url}/workshop/banner/{banner['id']}/dismiss", headers=csrf(room, ada), timeout=10)
    before = me(room, instructor, "Ada")
    act(room, instructor, before["id"], "extend").raise_for_status()
    link = re.search(r"<code>(http[^<]+)</code>", ada.get(f"{room.url}/workshop/resume-link", timeout=10).text)
    phone = requests.Session()
    page = phone.get(link.group(1), timeout=10)
    form = re.search(r'<form method="post" action="([^"]+)">\s*<input type="hidden" name="csrf" value="([^"]+)"',
                     page.text)
    phone.post(room.url + html.unescape(form.group(1)), data={"csrf": form.group(2)},
               headers={"Origin": room.url}, timeout=10).raise_for_status()
    extended = me(room, instructor, "Ada")["extended_s"]
    assert extended > 0

    room.stop()
    room.start()

    state = api(room, instructor)
    assert state["workshop"]["seated"] == 1 and state["workshop"]["waiting"] == 1
    assert state["workshop"]["banner"]["text"] == "lunch at noon"
    after = me(room, instructor, "Ada")
    assert after["place"] == "seated" and after["hand"]["message"] == "stuck at step 2"
    assert after["extended_s"] == extended and after["seated"] == before["seated"]
    assert after["host"] is None    # lab hosts do not outlive the server: hers went with it
    assert me(room, instructor, "Bob")["position"] == 1
    assert "number 1</strong> in the queue" in html.unescape(bob.get(f"{room.url}/join", timeout=10).text)
    # who dismissed the banner still has it dismissed; a used resume link stays used
    assert "lunch at noon" not in ada.get(f"{room.url}/workshop/me", timeout=10).text
    again = requests.Session().get(link.group(1), timeout=10)
    assert again.status_code == 403 and "used already" in html.unescape(again.text)
    # Ada goes on, on a new lab host, from both her devices; when she leaves, Bob is seated
    room.open_lab(ada)
    assert me(room, instructor, "Ada")["host"]["state"] == "ready"
    assert "Ada" in phone.get(f"{room.url}/workshop/me", timeout=10).text
    ada.post(f"{room.url}/workshop/leave", headers=csrf(room, ada), timeout=10).raise_for_status()
    assert me(room, instructor, "Bob")["place"] == "seated"
    room.open_lab(bob)
