"""Every policy rule and its message, without a hub."""

import pytest

from pangeohub.policy import PangeoPolicy, PolicyError, Profile, format_bytes, parse_bytes

PROFILES = [
    {"display_name": "Small", "slug": "small", "default": True},
    {
        "display_name": "Large",
        "slug": "large",
        "cpu_limit": 4,
        "mem_limit": "16G",
        "disk_size": "10Gi",
        "groups": ["Pangeo-Data:Climate"],
    },
    {"display_name": "GPU box", "groups": ["pangeo-data:ml"], "image": "pangeo/ml:2026"},
]


@pytest.fixture
def policy():
    return PangeoPolicy(profiles=PROFILES)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2G", 2 * 1024**3),
        ("2Gi", 2 * 1024**3),
        ("512M", 512 * 1024**2),
        ("1.5G", 1536 * 1024**2),
        ("100", 100),
        (3, 3),
        ("2GB", 2 * 1024**3),
    ],
)
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["two gigs", "", "-1G", "2X"])
def test_parse_bytes_refuses_nonsense(text):
    with pytest.raises(ValueError, match="not a size"):
        parse_bytes(text)


def test_format_bytes():
    assert format_bytes(2 * 1024**3) == "2 GiB"
    assert format_bytes(512 * 1024**2) == "512 MiB"


def test_defaults_are_one_cpu_two_gb_two_gib_disk():
    (profile,) = PangeoPolicy().all_profiles()
    assert profile.cpu_limit == 1
    assert profile.mem_limit == 2 * 1024**3
    assert profile.disk_size == 2 * 1024**3
    assert profile.default and not profile.groups


def test_profile_fields_and_defaults(policy):
    small, large, gpu = policy.all_profiles()
    assert (small.cpu_limit, small.mem_limit, small.disk_size) == (1, 2 * 1024**3, 2 * 1024**3)
    assert (large.cpu_limit, large.mem_limit, large.disk_size) == (4, 16 * 1024**3, 10 * 1024**3)
    assert large.groups == {"pangeo-data:climate"}  # group names compare lower-case
    assert gpu.slug == "gpu-box" and gpu.image == "pangeo/ml:2026"
    assert small.image == policy.default_image


def test_profiles_for_filters_by_group(policy):
    assert [p.slug for p in policy.profiles_for([])] == ["small"]
    assert [p.slug for p in policy.profiles_for(["pangeo-data:climate"])] == ["small", "large"]
    assert [p.slug for p in policy.profiles_for(["PANGEO-DATA:ML", "x:y"])] == ["small", "gpu-box"]


def test_choose_profile_default_and_named(policy):
    assert policy.choose_profile(None, []).slug == "small"
    assert policy.choose_profile("", ["pangeo-data:climate"]).slug == "small"
    assert policy.choose_profile("large", ["pangeo-data:climate"]).slug == "large"


def test_default_falls_to_first_allowed_when_default_is_forbidden():
    policy = PangeoPolicy(
        profiles=[
            {"display_name": "A", "default": True, "groups": ["o:a"]},
            {"display_name": "B", "groups": ["o:b"]},
        ]
    )
    assert policy.choose_profile(None, ["o:b"]).slug == "b"


def test_forbidden_profile_is_403_naming_the_choices(policy):
    with pytest.raises(PolicyError) as info:
        policy.choose_profile("large", ["pangeo-data:oceans"])
    assert info.value.status == 403
    assert info.value.message == "You may not use the profile 'large'. Choose one of: 'small'."


def test_unknown_profile_is_400_naming_the_choices(policy):
    with pytest.raises(PolicyError) as info:
        policy.choose_profile("huge", ["pangeo-data:climate"])
    assert info.value.status == 400
    assert "no profile 'huge'" in info.value.message
    assert "'small', 'large'" in info.value.message


def test_non_string_profile_is_400(policy):
    with pytest.raises(PolicyError) as info:
        policy.choose_profile(["large"], [])
    assert info.value.status == 400


def test_no_profile_at_all_is_403_with_advice():
    policy = PangeoPolicy(profiles=[{"display_name": "A", "groups": ["o:a"]}])
    with pytest.raises(PolicyError) as info:
        policy.choose_profile(None, ["o:b"])
    assert info.value.status == 403
    assert "Ask a hub admin" in info.value.message


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            {"display_name": "X", "cpu_limit": 64},
            "cpu_limit 64.0 exceeds PangeoPolicy.max_cpu_limit",
        ),
        (
            {"display_name": "X", "mem_limit": "1T"},
            "mem_limit 1 TiB exceeds PangeoPolicy.max_mem_limit",
        ),
        (
            {"display_name": "X", "disk_size": "1Ti"},
            "disk_size 1 TiB exceeds PangeoPolicy.max_disk_size",
        ),
        ({"display_name": "X", "cpu_limit": 0}, "cpu_limit must be positive"),
        ({"slug": "x"}, "needs a display_name"),
        ({"display_name": "X", "cpus": 2}, "unknown keys: cpus"),
        ({"display_name": "X", "mem_limit": "lots"}, "not a size"),
    ],
)
def test_bad_profiles_are_configuration_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        PangeoPolicy(profiles=[spec]).all_profiles()


def test_duplicate_slugs_are_refused():
    with pytest.raises(ValueError, match="repeated: a"):
        PangeoPolicy(profiles=[{"display_name": "A"}, {"display_name": "a"}]).all_profiles()


def test_bounds_are_the_admins():
    policy = PangeoPolicy(profiles=[{"display_name": "X", "cpu_limit": 8}], max_cpu_limit=4)
    with pytest.raises(ValueError, match="max_cpu_limit"):
        policy.all_profiles()


def test_named_server_limit_default_and_by_group():
    policy = PangeoPolicy(named_server_limit_by_group={"pangeo-data:core": 10, "o:big": 7})
    assert policy.named_server_limit_for([]) == 5
    assert policy.named_server_limit_for(["Pangeo-Data:Core"]) == 10
    assert policy.named_server_limit_for(["o:big", "pangeo-data:core"]) == 10
    unlimited = PangeoPolicy(named_server_limit_by_group={"o:staff": 0})
    assert unlimited.named_server_limit_for(["o:staff"]) == 0


def test_named_server_limit_refusal_says_how_many_and_how_to_free_one():
    policy = PangeoPolicy(named_server_limit=2)
    policy.check_new_named_server("grace", ["a"], [])
    with pytest.raises(PolicyError) as info:
        policy.check_new_named_server("grace", ["b", "a"], [])
    assert info.value.status == 403
    assert "grace already has 2 named servers (a, b)" in info.value.message
    assert "Delete one" in info.value.message


def test_no_limit_when_zero():
    PangeoPolicy(named_server_limit=0).check_new_named_server("g", [str(i) for i in range(50)], [])


@pytest.mark.parametrize("name", ["a", "climate-run2", "x" * 20, "r2d2"])
def test_valid_server_names(name):
    PangeoPolicy().check_server_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 21,
        "Upper",
        "under_score",
        "-lead",
        "trail-",
        "double--hyphen",
        "2start",
        "ünï",
        "a/b",
        "../x",
    ],
)
def test_invalid_server_names_say_what_valid_looks_like(name):
    with pytest.raises(PolicyError) as info:
        PangeoPolicy().check_server_name(name)
    assert info.value.status == 400
    assert "at most 20 characters" in info.value.message


def test_server_name_length_is_configurable_within_jupyterhubs_rule():
    PangeoPolicy(server_name_max_length=30).check_server_name("x" * 30)
    with pytest.raises(Exception, match="between 1 and 30"):
        PangeoPolicy(server_name_max_length=40)


def test_profile_summary_reads_well():
    p = Profile(
        slug="s", display_name="S", cpu_limit=2, mem_limit=4 * 1024**3, disk_size=10 * 1024**3
    )
    assert p.summary() == "2 CPU, 4 GiB memory, 10 GiB disk"
