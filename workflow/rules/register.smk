# register: each plane read from the raw files into its movie (int16, frames flagged) and
# registered there in place with suite2p (rigid + nonrigid), so a session writes one movie,
# as suite2p does. All planes of a session in one job: they run side by side in threads of
# one process, which imports torch and suite2p once (~0.5 GB of private memory per import)
# instead of once per plane.


def _of_planes(pattern, planes):
    """A per-plane path pattern expanded over ``planes``; subject and session stay open."""
    return expand(pattern, plane=planes, allow_missing=True)


# one rule per set of planes (the usual case is one set, and its rule is `register`);
# planes_of stops the run at its start if a subject's sessions differ in their planes
PLANE_SETS = sorted({tuple(planes_of(s)) for s in SUBJECTS})

for _planes in PLANE_SETS:

    rule:
        name:
            "register" if _planes == PLANE_SETS[0] else f"register_planes_{'_'.join(map(str, _planes))}"
        input:
            session=rules.ingest.output.session,
        output:
            # the registered movie is the largest result: temp() drops it after extract
            movies=(
                _of_planes(artifact("register.movie"), _planes)
                if SETTINGS["register"].keep_movie
                else temp(_of_planes(artifact("register.movie"), _planes))
            ),
            headers=_of_planes(artifact("register.header"), _planes),
            registrations=_of_planes(artifact("register.registration"), _planes),
            frames=_of_planes(artifact("register.frames"), _planes),
        params:
            settings=stage_settings("register"),
            ingest_settings=stage_settings("ingest"),
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

