"""User administration (``/api/v1/users``, admin only): list, show, change role, disable and
delete. Disabling or deleting a user ends their sessions at once. An admin cannot demote,
disable or delete themselves (409): there is always someone left to undo a mistake.
"""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

from lts.api.audit import audit
from lts.api.deps import AdminUser
from lts.api.errors import answers
from lts.api.portfolio_schemas import Offset, PathId
from lts.api.schemas import UserPublic, UserUpdate

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("", response_model=list[UserPublic])
async def list_users(caller: AdminUser,
                     offset: Offset = 0,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[UserPublic]:
    ctx = caller.ctx
    return [UserPublic.model_validate(u)
            for u in await ctx.auth.list_users(ctx.engine.db, offset, limit)]


@router.get("/{user_id}", response_model=UserPublic)
async def get_user(user_id: PathId, caller: AdminUser) -> UserPublic:
    ctx = caller.ctx
    user = await ctx.auth.get_user(ctx.engine.db, user_id)
    if user is None:
        raise HTTPException(404, "no such user")
    return UserPublic.model_validate(user)


@router.patch("/{user_id}", response_model=UserPublic, responses=answers(409))
async def update_user(user_id: PathId, body: UserUpdate, request: Request,
                      caller: AdminUser) -> UserPublic:
    ctx, who = caller
    target = f"user:{user_id}"
    change = body.model_dump(exclude_none=True)
    if user_id == who.user_id and (change.get("role", "admin") != "admin"
                                   or change.get("is_active", True) is False):
        audit(ctx, request, who, "user.update", target, "failure", {"reason": "self", **change})
        raise HTTPException(409, "an admin cannot demote or disable themselves")
    user = await ctx.auth.update_user(ctx.engine.db, user_id, role=body.role,
                                  is_active=body.is_active)
    if user is None:
        audit(ctx, request, who, "user.update", target, "failure", {"reason": "not found"})
        raise HTTPException(404, "no such user")
    if body.is_active is False:
        await ctx.sessions.revoke_user(user_id)
    ctx.sessions.forget_user(user_id)  # the next request reads the new role
    audit(ctx, request, who, "user.update", target, "success", change)
    return UserPublic.model_validate(user)


@router.delete("/{user_id}", status_code=204, response_class=Response, responses=answers(409))
async def delete_user(user_id: PathId, request: Request, caller: AdminUser) -> Response:
    ctx, who = caller
    target = f"user:{user_id}"
    if user_id == who.user_id:
        audit(ctx, request, who, "user.delete", target, "failure", {"reason": "self"})
        raise HTTPException(409, "an admin cannot delete themselves")
    await ctx.sessions.revoke_user(user_id)
    if not await ctx.auth.delete_user(ctx.engine.db, user_id):
        audit(ctx, request, who, "user.delete", target, "failure", {"reason": "not found"})
        raise HTTPException(404, "no such user")
    audit(ctx, request, who, "user.delete", target, "success")
    return Response(status_code=204)
