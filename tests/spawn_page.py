"""What a spawn page offers, read the way a browser would find it (either picker)."""

from __future__ import annotations

import json
import re


def offered_profiles(page: str) -> list[str]:
    """The profile slugs the spawn page offers: fancy-profiles' list, else the radios."""
    fancy = re.search(r"window\.profileList\s*=\s*(.*?);\s*$", page, re.M)
    if fancy:
        return [entry["slug"] for entry in json.loads(fancy.group(1))]
    return re.findall(r'<input type="radio" name="profile" value="([^"]+)"', page)
