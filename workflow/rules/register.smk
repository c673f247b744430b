# register: suite2p rigid + nonrigid registration, all planes of a session in one job. The
# planes run side by side in threads of one process, which imports torch and suite2p
# once (~0.5 GB of private memory per import) instead of once per plane.


def _check_session_planes():
    """Every session of a subject must have its subject's planes (one job per session)."""
    for (subject, session), meta in META.items():
        if sorted(meta.plane_roles) != planes_of(subject):
            raise ValueError(
                f"subject {subject}, session {session}: planes {sorted(meta.plane_roles)} "
                f"differ from its other sessions' {planes_of(subject)}; fix n_planes and "
                "plane_roles in the sessions' session.yaml (or split the subject)."
            )


def _register_files(planes, stage, name):
    return expand(
        f"{RESULTS}/{stage}/{{subject}}/{{session}}/plane{{plane}}/{name}",
        plane=planes,
        allow_missing=True,
    )


_check_session_planes()
# one rule per set of planes (the usual case is one set, and its rule is `register`)
PLANE_SETS = sorted({tuple(planes_of(s)) for s in SUBJECTS})

for _planes in PLANE_SETS:

    rule:
        name:
            "register" if _planes == PLANE_SETS[0] else f"register_planes_{'_'.join(map(str, _planes))}"
        input:
            movies=_register_files(_planes, "ingest", "movie.bin"),
            headers=_register_files(_planes, "ingest", "movie.bin.json"),
        output:
            movies=_register_files(_planes, "register", "movie.bin"),
            headers=_register_files(_planes, "register", "movie.bin.json"),
            registrations=_register_files(_planes, "register", "registration.nc"),
        params:
            settings=stage_settings("register"),
            planes=list(_planes),
        wildcard_constraints:
            subject="|".join(re.escape(s) for s in SUBJECTS if tuple(planes_of(s)) == _planes),
        # one thread per plane: the two planes of a session share 2 cores
        threads: len(_planes)
        resources:
            mem_mb=1200 + 600 * len(_planes),
            runtime=60,
        log:
            f"{RESULTS}/logs/register/{{subject}}/{{session}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/register/{{subject}}/{{session}}.tsv"
        script:
            "../scripts/register.py"


def registered(name):
    """Input: a file of the registered plane ``{plane}`` (movie.bin, its header, or
    registration.nc), whichever register rule made it."""
    return f"{RESULTS}/register/{{subject}}/{{session}}/plane{{plane}}/{name}"
