"""The ``aria_auth.auth`` actor: the shell around :mod:`.tokens` and :mod:`.accounts`.

At start it applies aria_auth's migrations (through aria_data), makes sure its
discharge key exists in aria_security, creates the roles of its settings that are
missing, and builds the node's shared :class:`.tokens.TokenVerifier`.

Each request runs in a task of its own and is answered from there (argon2 takes
tens of milliseconds; one login must not hold up the next). Expected failures
(:class:`AuthError`, ``ValueError``, and ``DatabaseError`` / ``SecretsError`` when a
store is down) go back to the caller; anything else is a bug and crashes the
actor, which its supervisor restarts.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ..._runtime.actor import Actor, handles
from ..._runtime.messages import ExitReason
from ..data.api import DatabaseError
from ..data.client import Data
from ..security.api import SecretNotFound, SecretsError, VersionConflict
from ..security.client import Secrets
from . import caveats as language
from . import macaroons, thirdparty
from .accounts import Accounts
from .errors import AuthConflict, AuthError
from .messages import (
    AssignRole,
    ConfirmMfa,
    CreateUser,
    DeleteRole,
    DeleteUser,
    DisableMfa,
    DisableUser,
    Discharge,
    EnrollMfa,
    GetVerifier,
    ListRoles,
    ListUsers,
    Login,
    Logout,
    Purge,
    PutRole,
    Refresh,
    RevokeFamily,
    RevokeToken,
    RevokeUser,
    RotateRootKey,
    ServiceToken,
    SetPassword,
    ThirdPartyCaveat,
    UnassignRole,
    UserPermissions,
    VerifyToken,
)
from .settings import SERVICE, load_settings
from .store import MIGRATIONS, AuthStore
from .tokens import TokenMinter, TokenVerifier

PURGE_INTERVAL: Final = 3600.0
EXPECTED: Final = (AuthError, ValueError, DatabaseError, SecretsError)


class AuthActor(Actor):
    """``aria_auth.auth``; see the module documentation."""

    secret_fields = frozenset({"discharge_key"})

    async def init(self) -> None:
        self.settings = load_settings(self.node.service_settings(SERVICE))
        data = Data(self.node)
        await data.migrate(SERVICE, MIGRATIONS)
        self.db = data.database()
        self.secrets = Secrets(self.node, caller=SERVICE)
        self.discharge_key = await self._discharge_key()
        self.verifier = TokenVerifier(self.db, self.secrets, self.settings)
        self.verifier.owner = self.ref
        self.minter = TokenMinter(self.db, self.secrets, self.settings, self.verifier)
        self.accounts = Accounts(self.db, self.secrets, self.settings, self.minter)
        await self.accounts.passwords.prepare()
        made = await self.accounts.ensure_roles()
        if made:
            self.log.info("roles_created", roles=made)
        self.tasks: set[asyncio.Task[None]] = set()
        self.send_after(PURGE_INTERVAL, Purge())

    async def terminate(self, reason: ExitReason) -> None:
        self.verifier.closed = True
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5.0)

    async def _discharge_key(self) -> bytes:
        """aria_auth's discharge key from aria_security, made on first start."""
        for _ in range(3):
            try:
                secret = await self.secrets.get(thirdparty.SECRET_PATH)
                return base64.b64decode(secret.data["key"], validate=True)
            except SecretNotFound:
                key = base64.b64encode(thirdparty.new_discharge_key()).decode()
                try:
                    await self.secrets.put(thirdparty.SECRET_PATH, {"key": key}, cas=0)
                except VersionConflict:
                    continue  # another node made it first: read theirs
        raise SecretsError(f"cannot read or create {thirdparty.SECRET_PATH}")

    # -- running requests ----------------------------------------------------------------------

    def answer(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Answer the current call from a task of its own."""
        reply = self.defer_reply()

        async def run() -> None:
            try:
                result = await work()
            except EXPECTED as exc:
                reply.fail(exc)
                return
            except Exception as exc:
                reply.fail(exc)
                self.stop(ExitReason.from_exception(exc))  # a bug: restart clean
                return
            reply.reply(result)

        task = self.start_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- users and roles -----------------------------------------------------------------------

    @handles(CreateUser)
    def create_user(self, message: CreateUser) -> None:
        self.answer(lambda: self.accounts.create_user(message.user, message.password))

    @handles(SetPassword)
    def set_password(self, message: SetPassword) -> None:
        self.answer(lambda: self.accounts.set_password(message.user, message.password))

    @handles(DisableUser)
    def disable_user(self, message: DisableUser) -> None:
        self.answer(lambda: self.accounts.disable_user(message.user, message.disabled))

    @handles(DeleteUser)
    def delete_user(self, message: DeleteUser) -> None:
        self.answer(lambda: self.accounts.delete_user(message.user))

    @handles(ListUsers)
    def list_users(self, message: ListUsers) -> None:
        self.answer(self.accounts.users)

    @handles(PutRole)
    def put_role(self, message: PutRole) -> None:
        self.answer(
            lambda: self.accounts.put_role(message.name, message.permissions, message.description)
        )

    @handles(DeleteRole)
    def delete_role(self, message: DeleteRole) -> None:
        self.answer(lambda: AuthStore(self.db).delete_role(message.name))

    @handles(ListRoles)
    def list_roles(self, message: ListRoles) -> None:
        self.answer(lambda: AuthStore(self.db).roles())

    @handles(AssignRole)
    def assign_role(self, message: AssignRole) -> None:
        self.answer(lambda: AuthStore(self.db).assign(message.user, message.role))

    @handles(UnassignRole)
    def unassign_role(self, message: UnassignRole) -> None:
        self.answer(lambda: AuthStore(self.db).unassign(message.user, message.role))

    @handles(UserPermissions)
    def user_permissions(self, message: UserPermissions) -> None:
        async def work() -> list[str]:
            return sorted(await self.accounts.permissions(message.user))

        self.answer(work)

    # -- logins and tokens ---------------------------------------------------------------------

    @handles(Login)
    def login(self, message: Login) -> None:
        self.answer(
            lambda: self.accounts.login(
                message.user, message.password, message.source, message.code
            )
        )

    @handles(Refresh)
    def refresh(self, message: Refresh) -> None:
        self.answer(lambda: self.minter.refresh(message.token, self.accounts.permissions))

    @handles(Logout)
    def logout(self, message: Logout) -> None:
        async def work() -> None:
            verified = await self.verifier.identify(message.token)
            await self.minter.revoke_family(verified.family, "logout")

        self.answer(work)

    @handles(RevokeToken)
    def revoke_token(self, message: RevokeToken) -> None:
        self.answer(lambda: self.minter.revoke_token(message.token))

    @handles(RevokeUser)
    def revoke_user(self, message: RevokeUser) -> None:
        self.answer(lambda: self.minter.revoke_principal(message.user, "revoked by operator"))

    @handles(RevokeFamily)
    def revoke_family(self, message: RevokeFamily) -> None:
        self.answer(lambda: self.minter.revoke_family(message.family, "revoked by operator"))

    @handles(RotateRootKey)
    def rotate_root_key(self, message: RotateRootKey) -> None:
        async def work() -> str:
            key_id, _ = await self.minter.rotate_key(message.family, message.retire)
            return key_id

        self.answer(work)

    @handles(ServiceToken)
    def service_token(self, message: ServiceToken) -> None:
        grant = self.settings.services.get(message.service)
        if grant is None:
            self.defer_reply().fail(
                AuthConflict(
                    f"service {message.service!r} has no entry under [services.{SERVICE}.services]"
                )
            )
            return
        self.answer(
            lambda: self.minter.service_token(
                message.service, frozenset(grant.permissions), grant.lifetime
            )
        )

    @handles(VerifyToken)
    def verify_token(self, message: VerifyToken) -> None:
        request = language.Request(
            service=message.service,
            permissions=frozenset(message.permissions),
            resources=message.resources,
            confined=message.confined,
        )
        self.answer(lambda: self.verifier.verify(message.token, request, message.discharges))

    @handles(GetVerifier)
    def get_verifier(self, message: GetVerifier) -> TokenVerifier:
        return self.verifier

    # -- MFA -----------------------------------------------------------------------------------

    @handles(EnrollMfa)
    def enroll_mfa(self, message: EnrollMfa) -> None:
        self.answer(lambda: self.accounts.enroll_mfa(message.user))

    @handles(ConfirmMfa)
    def confirm_mfa(self, message: ConfirmMfa) -> None:
        self.answer(lambda: self.accounts.confirm_mfa(message.user, message.code))

    @handles(DisableMfa)
    def disable_mfa(self, message: DisableMfa) -> None:
        self.answer(lambda: self.accounts.disable_mfa(message.user))

    # -- third-party caveats -------------------------------------------------------------------

    @handles(ThirdPartyCaveat)
    def third_party_caveat(self, message: ThirdPartyCaveat) -> None:
        async def work() -> str:
            caveat_key = thirdparty.new_discharge_key()
            cid = thirdparty.caveat_id(self.discharge_key, caveat_key, message.condition)
            return macaroons.add_third_party_caveat(
                message.token, self.settings.location, caveat_key, cid
            )

        self.answer(work)

    @handles(Discharge)
    def discharge(self, message: Discharge) -> None:
        async def work() -> str:
            caveat_key, condition = thirdparty.open_caveat_id(self.discharge_key, message.caveat_id)
            caller = await self.verifier.verify(message.token, language.Request(service=SERVICE))
            roles = await AuthStore(self.db).user_roles(caller.principal)
            thirdparty.holds(condition, caller, roles)
            expires = self.minter.wall() + self.settings.discharge_lifetime
            self.log.info("discharged", condition=condition, principal=caller.principal)
            return macaroons.discharge(
                caveat_key,
                message.caveat_id,
                [language.LANGUAGE, language.time_before(expires)],
                self.settings.location,
            )

        self.answer(work)

    # -- housekeeping --------------------------------------------------------------------------

    @handles(Purge)
    async def purge(self, message: Purge) -> None:
        try:
            purged = await AuthStore(self.db).purge(self.minter.wall(), grace=86400.0)
            if purged:
                self.log.info("token_families_purged", count=purged)
        except DatabaseError as exc:
            self.log.warning("purge_failed", error=str(exc))
        self.send_after(PURGE_INTERVAL, Purge())
