import time, sys
sys.path.insert(0, "/work/main/tests/simulate")
from test_gateway_agreement import *  # noqa
from test_gateway_agreement import world  # noqa

def test_timing(world):
    bundle = world["bundle"]
    t=time.perf_counter(); matrix = build_matrix(bundle, ADMINS); print("matrix", time.perf_counter()-t)
    index, rtype, column = world["columns"][5]
    ids=_ids(index); user, groups = _user(index, column)
    t=time.perf_counter(); samples = requests_by_action(ids, OPEN); print("samples", time.perf_counter()-t)
    acts = list(matrix.actions[rtype])[:30]
    t=time.perf_counter()
    for a in acts: _gateway_allows(world, samples[a], user, groups)
    print("gateway 30", time.perf_counter()-t)
    src = FileSource(world["data"])
    t=time.perf_counter()
    for a in acts:
        s=samples[a]; simulate_request(bundle, src, subject_for(user), groups, s.method, s.target, s.body, ADMINS, s.headers)
    print("sim 30", time.perf_counter()-t)
    t=time.perf_counter()
    for a in acts: world["idp"].mint(user, groups)
    print("mint 30", time.perf_counter()-t)
