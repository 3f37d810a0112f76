"""Hardware profiles, each optionally limited to groups (org:team), and the environment
each runs in on one machine (c.Environments; the bundle's "pangeo" is the Pangeo stack)."""

c = get_config()  # noqa: F821

c.PangeoPolicy.profiles = [
    {
        "display_name": "Small",
        "slug": "small",
        "description": "Exploring data and light analysis.",
        "cpu_limit": 1,
        "mem_limit": "2G",
        "environment": "pangeo",
        "default": True,
    },
    {
        "display_name": "Large",
        "slug": "large",
        "description": "Heavier analysis, for the climate team and admins.",
        "cpu_limit": 4,
        "mem_limit": "16G",
        "disk_size": "10Gi",
        "environment": "pangeo",
        "groups": ["pangeo-data:climate", "pangeo-data:hub-admins"],
    },
]
