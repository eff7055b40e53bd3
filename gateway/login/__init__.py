"""Where people prove who they are: identity sources and the pages around them.

``source`` is the identity source protocol; ``directory`` (with ``directory_file``) the
TOML directory source; ``lockout`` the attempt limits (per account, per person) and
``throttle`` failed logins per client address; ``pages`` the login page; ``stepup``
raising a session's level, ``factors`` the demo's simulated factors; ``my_logins`` a
person's view of their session and logout everywhere.
"""

from gateway.login.directory import TomlDirectory
from gateway.login.factors import simulated_factors
from gateway.login.my_logins import MyLogins
from gateway.login.pages import LoginPages
from gateway.login.source import PasswordSource
from gateway.login.stepup import StepUpFactor, StepUpPages

__all__ = [
    "LoginPages",
    "MyLogins",
    "PasswordSource",
    "StepUpFactor",
    "StepUpPages",
    "TomlDirectory",
    "simulated_factors",
]
