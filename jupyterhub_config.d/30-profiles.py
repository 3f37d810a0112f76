"""Hardware/image profiles, each optionally limited to groups (org:team)."""

c = get_config()  # noqa: F821

c.PangeoPolicy.profiles = [
    {
        "display_name": "Small",
        "slug": "small",
        "description": "1 CPU, 2 GB: exploring data, light analysis.",
        "cpu_limit": 1,
        "mem_limit": "2G",
        "default": True,
    },
    {
        "display_name": "Large",
        "slug": "large",
        "description": "4 CPU, 16 GB, 10 GiB disk: for the climate team.",
        "cpu_limit": 4,
        "mem_limit": "16G",
        "disk_size": "10Gi",
        "groups": ["pangeo-data:climate", "pangeo-data:hub-admins"],
    },
]
