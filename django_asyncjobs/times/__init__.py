"""Time: durations written as text, cron and interval recurrences, and the database's clock.

Foundation layer. Owns parsing ``"90s"``/``"1h30m"`` (:mod:`.durations`), when a cron
expression or interval is next due in a time zone (:mod:`.recurrence`), conversions to
UTC and to the form the database stores (:mod:`.zones`), and the one clock
that times compared across hosts come from (:mod:`.clock`). May import only
:mod:`django_asyncjobs.exceptions`, :mod:`django_asyncjobs.conf` and Django.
"""
