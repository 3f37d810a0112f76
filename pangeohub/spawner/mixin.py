"""The policy mixin both pangeohub spawners share: same rules, same messages."""

from __future__ import annotations

import asyncio
from inspect import isawaitable

from traitlets import Any, Callable, List, default
from traitlets.config import Configurable

from ..environment_hooks import collect_environment, log_hook_failure
from ..metrics import RunningCount
from ..parts import hub_part
from ..policy import PangeoPolicy, PolicyError, Profile
from ..refusal import refusal
from ..server_hooks import server_environment_hooks, server_stop_hooks


class PangeoSpawnerMixin(Configurable):
    """Applies :class:`~pangeohub.policy.PangeoPolicy` to a JupyterHub spawner.

    Each start runs the profile the policy allows from ``user_options["profile"]``
    (refusing unknown or forbidden ones with a 4xx), applied once, at one point each
    spawner names, to the spawner's own traits (:meth:`profile_traits`); the server's
    extra environment comes from ``environment_hooks``. The admin's
    ``options_from_form`` is honoured: its result passes the same checks.
    """

    environment_hooks = List(
        Callable(),
        help="""Callables ``hook(spawner) -> dict`` (may be async) adding environment
        variables to every server, after pangeohub's own parts (scratch, Dask Gateway):
        where two set the same variable, the later in this order wins.

        The hooks run concurrently (none should rely on another having run). A hook that
        fails is logged and skipped; the server still starts.
        """,
    ).tag(config=True)

    profile = Any(None, allow_none=True, help="The Profile this server runs (set at start).")

    # what hooks of the current start deferred (defer_until_started)
    start_tasks: list | None = None

    _policy = None
    _hook_environment: dict[str, str] | None = None
    _running_count: RunningCount | None = None

    @default("apply_user_options")
    def _options_are_applied_at_start(self):
        # JupyterHub's hook (5.3+) runs before the start: pangeohub checks and applies the
        # options once, at the start (each spawner's one point), so the hook has nothing
        # to do, and JupyterHub does not warn of "unhandled user_options" at every start.
        return lambda spawner, user_options: None

    # -- pangeohub_servers_running: a start counts, a stop or a poll finding it gone uncounts

    def _count(self) -> RunningCount:
        if self._running_count is None:
            self._running_count = RunningCount()
        return self._running_count

    def _profile_slug(self) -> str | None:
        if self.profile is not None:
            return self.profile.slug
        return (self.user_options or {}).get("profile")

    async def start(self):
        try:
            result = super().start()
            if isawaitable(result):
                result = await result
        finally:
            await self.finish_start_tasks()
        self._count().running(self._profile_slug())
        return result

    def defer_until_started(self, coroutine) -> None:
        """Run ``coroutine`` beside the rest of this start (e.g. a hook's report to a
        service that the server's environment does not depend on); the start is not
        reported done before it ends."""
        if self.start_tasks is None:
            self.start_tasks = []
        task = asyncio.ensure_future(coroutine)
        task.add_done_callback(self._log_failed_start_task)
        self.start_tasks.append(task)

    def _log_failed_start_task(self, task: asyncio.Future) -> None:
        """A deferred task's failure, logged by type (its message may hold a secret)."""
        if not task.cancelled() and task.exception() is not None:
            coroutine = task.get_coro()
            log_hook_failure(self.log, "Start task", coroutine, self._log_name, task.exception())

    async def finish_start_tasks(self) -> None:
        """Wait for what this start deferred (a failure is logged, and skipped)."""
        tasks, self.start_tasks = self.start_tasks or [], None
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self, *args, **kwargs):
        try:
            result = super().stop(*args, **kwargs)
            if isawaitable(result):
                result = await result
            return result
        finally:
            self._count().stopped()

    async def poll(self):
        status = super().poll()
        if isawaitable(status):
            status = await status
        if status is None:  # running: e.g. taken up again after a hub restart
            self._count().running(self._profile_slug())
        else:
            self._count().stopped()
        return status

    @property
    def policy(self) -> PangeoPolicy:
        """The hub's policy, configured from ``c.PangeoPolicy``."""
        if self._policy is None:
            self._policy = hub_part(PangeoPolicy, self)
        return self._policy

    @property
    def user_groups(self) -> list[str]:
        """The JupyterHub group names of this server's user."""
        return [group.name for group in self.user.groups]

    def allowed_profiles(self) -> list[Profile]:
        """The profiles this server's user may choose."""
        return self.policy.profiles_for(self.user_groups)

    def resolve_profile(self, slug: str | None) -> Profile:
        """The profile to run, or an HTTP 4xx saying which ones the user may choose.

        A refused choice is not kept as this server's saved options, so the next start
        without options gets the user's default instead of the same refusal.
        """
        try:
            return self.policy.choose_profile(slug, self.user_groups)
        except PolicyError as error:
            self.forget_saved_options()
            raise refusal(error) from None

    async def rename(self, old_name: str, new_name: str) -> None:
        """JupyterHub 6's rename (``PATCH .../servers/<name>``): the new name keeps the
        name rule, and the server's disk goes with it (:meth:`move_disk`)."""
        try:
            self.policy.check_server_name(new_name)
        except PolicyError as error:
            raise refusal(error) from None
        await self.move_disk(old_name, new_name)

    async def move_disk(self, old_name: str, new_name: str) -> None:
        """Make the server's disk follow a rename, or refuse it (each spawner its own)."""
        raise refusal(PolicyError(400, "Servers cannot be renamed on this hub."))

    def forget_saved_options(self) -> None:
        """Drop the options JupyterHub saved for this server's next start."""
        orm_spawner = getattr(self, "orm_spawner", None)
        if orm_spawner is not None and orm_spawner.user_options:
            orm_spawner.user_options = {}
            self.db.commit()
        self.user_options = {}

    def profile_traits(self, profile: Profile) -> dict:
        """The spawner traits ``profile`` sets: its limits, and the guarantees it names
        (at most its limits)."""
        traits = {"cpu_limit": profile.cpu_limit, "mem_limit": profile.mem_limit}
        if profile.cpu_guarantee is not None:
            traits["cpu_guarantee"] = min(float(profile.cpu_guarantee), profile.cpu_limit)
        if profile.mem_guarantee is not None:
            traits["mem_guarantee"] = min(profile.mem_guarantee, profile.mem_limit)
        return traits

    # -- the spawn form's options (JupyterHub's options_from_form, then the policy) --

    def run_options_from_form(self, form_data):
        """JupyterHub's: the configured ``options_from_form`` (each spawner's reading of
        its own form, unless the admin set another), then the policy's checks, so that a
        profile or choice the user may not have is refused (4xx) at the form."""
        return self.checked_options(super().run_options_from_form(form_data))

    def options_from_query(self, query_data):
        """JupyterHub's (``/spawn?profile=...``), then the policy's checks."""
        return self.checked_options(super().options_from_query(query_data))

    def checked_options(self, options) -> dict:
        """``options`` as given (a ``profile`` they name, by its slug), or a 4xx when they
        ask for a profile or choice the user may not have. Options that name no profile
        start the user's default."""
        if not isinstance(options, dict) or not isinstance(options.get("profile"), str | None):
            self.log.warning("Options for %s name no profile by its slug", self._log_name)
            raise refusal(PolicyError(400, "Those server options are not valid here."))
        profile = self.resolve_profile(options.get("profile"))
        try:
            self.check_options(options, profile)
        except PolicyError as error:
            raise refusal(error) from None
        return {**options, "profile": profile.slug} if "profile" in options else options

    def check_options(self, options: dict, profile: Profile) -> None:
        """Refuse (:class:`PolicyError`) options ``profile`` does not offer; the local
        spawner offers none besides the profile."""

    async def run_environment_hooks(self) -> dict[str, str]:
        """Collect the environment pangeohub's enabled parts and the admin's hooks add;
        a failing hook is skipped."""
        hooks = [*server_environment_hooks(self), *self.environment_hooks]
        return await collect_environment(hooks, self, "Environment hook")

    async def run_post_stop_hook(self):
        """The admin's ``post_stop_hook``, then pangeohub's (e.g. stop the server's Dask
        clusters); a failing hook is logged by name and skipped."""
        result = super().run_post_stop_hook()
        if isawaitable(result):
            await result
        for hook in server_stop_hooks(self):
            try:
                await hook(self)
            except Exception as error:
                log_hook_failure(self.log, "Stop hook", hook, self._log_name, error)

    async def prepare_start(self) -> None:
        """What the policy adds before a start, once the profile is applied: the profile
        as the server runs it (its image), then the environment hooks' variables."""
        if self.profile is not None:
            self.profile = self.profile_as_run(self.profile)
        self._hook_environment = await self.run_environment_hooks()

    def profile_as_run(self, profile: Profile) -> Profile:
        """``profile`` with the image the server runs (each spawner knows it)."""
        return profile

    def policy_environment(self) -> dict[str, str]:
        """What pangeohub puts in every server's environment."""
        env = dict(self._hook_environment or {})
        if self.profile is not None:
            env["PANGEO_PROFILE"] = self.profile.slug
        return env

    def get_env(self):
        env = super().get_env()
        env.update(self.policy_environment())
        return env
