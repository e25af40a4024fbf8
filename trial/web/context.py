from trial.roles import ROLE_LABELS, Role, roles_of


def roles(request):
    mine = roles_of(getattr(request, "user", None))
    return {
        "my_roles": {role.value for role in mine},
        "my_role_labels": [ROLE_LABELS[role] for role in sorted(mine)],
        "Role": {role.name: role.value for role in Role},
    }
