"""The GPU side of scripts/device-check.sh: replays an `edgeinspector-eval --export-graphs` folder.

Needs python3 with numpy; uses onnxruntime and torch when they are there. No .NET, no network.
It proves what the machine allows and says plainly what it could not prove, and why.
"""
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

TOLERANCE = 1e-4        # image scores: the .NET tests' tolerance (tests/EdgeInspector.Integration.Tests/ScoringGraphTests.cs)
PATCH_TOLERANCE = 2e-3  # patch scores: the window searches levels (WindowGrid), where a near-duplicate patch can be an exact copy,
                        # a distance of 0; there sqrt(2 - 2 dot) moves by sqrt(2e) for an error e in the dot, and another
                        # summation order (a GPU's) moves the dots by about 1e-6: 1.4e-3 (the .NET tests' PatchTolerance).
                        # The image score, the largest patch, is far from zero.
VIEW_TOLERANCE = 1e-5  # views: the .NET tests' tolerance for the views graph against ViewBuilder (ScoringGraphTests.cs)
TILE_BATCH = 4    # a 2x2 tiling: four tiles, each against its own position's reservoir
RUNS = 20

proven, unproven = [], []


def say(line=""):
    print(line, flush=True)


def judged(line, ok):
    """A check's line, printed and listed as proven or not."""
    say(line)
    (proven if ok else unproven).append(line)


def load(d):
    m = json.load(open(os.path.join(d, "manifest.json")))
    views = len(m["dims"])
    q = [np.load(os.path.join(d, f"query_{v}.npy")) for v in range(views)]
    r = [np.load(os.path.join(d, f"reservoir_{v}.npy")) for v in range(views)]
    g = [np.load(os.path.join(d, f"grid_{v}.npy")) for v in range(views)] if m.get("radius", -1) >= 0 else None
    excluded = np.load(os.path.join(d, "excluded.npy"))
    k = np.load(os.path.join(d, "k.npy"))
    patches = np.load(os.path.join(d, "expected_patches.npy"))
    image = np.load(os.path.join(d, "expected_image.npy"))
    return m, q, (r, g), excluded, k, patches, image


def machine():
    say("== machine")
    say(f"{platform.machine()} {platform.platform()}, python {platform.python_version()}, numpy {np.__version__}")
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        say("nvidia-smi: " + (out.stdout.strip() or out.stderr.strip()))
    except (OSError, subprocess.TimeoutExpired) as e:
        say(f"nvidia-smi: not available ({e})")


def feeds(q, r, excluded, k, f):
    """r is (kept rows per view, whole-frame grids per view or None)."""
    rows, grids = r
    x = {"excluded": excluded, "k": k}
    for v in range(len(q)):
        x[f"query_{v}"] = q[v][f]
        x[f"reservoir_{v}"] = rows[v]
        if grids is not None:
            x[f"grid_{v}"] = grids[v]
    return x


def slots_of(g):
    """A view's window grids as the graphs hold them, [H+2r, blocks, D, B, R], as one frame per slot: [R, H+2r, blocks*B, D]."""
    hp, nb, d, b, r = g.shape
    return np.ascontiguousarray(g.transpose(4, 0, 1, 3, 2).reshape(r, hp, nb * b, d))


def grids_of(s, b):
    """slots_of's inverse, for blocks of b columns."""
    r, hp, wg, d = s.shape
    return np.ascontiguousarray(s.reshape(r, hp, wg // b, b, d).transpose(1, 2, 4, 3, 0))


def full(r, capacity):
    """The exported slots repeated to the engine's capacity: what score_full.onnx is timed on."""
    rows, grids = r
    rep = lambda a: np.ascontiguousarray(np.resize(a, (capacity,) + a.shape[1:]))
    return [rep(a) for a in rows], (None if grids is None else [grids_of(rep(slots_of(g)), g.shape[3]) for g in grids])


def median_ms(fn, runs=RUNS, warm=3):
    for _ in range(warm):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def provider_spec(provider, tf32=False):
    """A session's provider as the service makes the graphs' sessions: the CUDA provider with TF32 off
    (OnnxBackbone.CudaOptions). ONNX Runtime's own default is on, on GPUs from Ampere on, and it moves a unit
    vector's dot products by about 1e-4: over these tolerances. tf32=True asks for that default, to show what it changes."""
    if provider == "CUDAExecutionProvider":
        return (provider, {"use_tf32": "1" if tf32 else "0"})
    return provider


def score_worst(session, q, r, excluded, k, exp_p, exp_i):
    """Largest patch and image differences of the score graph against the .NET CPU outputs, over the exported frames."""
    worst_p = worst_i = 0.0
    for f in range(q[0].shape[0]):
        patches, image = session.run(["patches", "image"], feeds(q, r, excluded, k, f))
        worst_p = max(worst_p, float(np.abs(patches - exp_p[f]).max()))
        worst_i = max(worst_i, float(abs(float(image) - float(exp_i[f]))))
    return worst_p, worst_i


def onnxruntime_check(d, m, q, r, excluded, k, exp_p, exp_i, views):
    say("== ONNX Runtime")
    try:
        import onnxruntime as ort
    except ImportError as e:
        unproven.append(f"ONNX Runtime: python's onnxruntime is not installed here ({e})")
        say("onnxruntime: not installed")
        return
    available = ort.get_available_providers()
    say(f"onnxruntime {ort.__version__}; providers in this build: {', '.join(available)}")
    frames = q[0].shape[0]
    for provider in ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]:
        if provider not in available:
            unproven.append(f"{provider}: not in this machine's onnxruntime build ({ort.__version__}); the .NET package's CUDA provider "
                            "library alone is 284 MB, over the 64 MiB a device call carries, and the TensorRT provider needs TensorRT, "
                            "which this machine does not have")
            continue
        def open_graph(name, tf32=False, provider=provider):
            return ort.InferenceSession(os.path.join(d, name), providers=[provider_spec(provider, tf32)])
        try:
            session = open_graph("score.onnx")
        except Exception as e:  # a provider that is listed but cannot start (missing CUDA/TensorRT libraries)
            unproven.append(f"{provider}: listed, but the session did not start: {str(e).splitlines()[0]}")
            continue
        ran_on = session.get_providers()
        worst_p, worst_i = score_worst(session, q, r, excluded, k, exp_p, exp_i)
        ok = worst_p <= PATCH_TOLERANCE and worst_i <= TOLERANCE
        # Timed at the engine's own capacity: the exported slots repeated, every slot included.
        cap = int(m.get("capacity_full", r[0][0].shape[0]))
        rf = full(r, cap)
        xf = np.zeros((cap, 1), dtype=bool)
        kf = np.array([max(1, int(0.3 * cap))], dtype=np.int64)
        has_full = os.path.exists(os.path.join(d, "score_full.onnx"))
        timed = open_graph("score_full.onnx") if has_full else session
        one = median_ms(lambda: timed.run(["patches", "image"], feeds(q, rf, xf, kf, 0)))
        batch = median_ms(lambda: [timed.run(["patches", "image"], feeds(q, rf, xf, kf, f % frames)) for f in range(TILE_BATCH)]) / TILE_BATCH
        line = (f"{provider} (session providers {ran_on}): score graph against the .NET CPU outputs, {frames} frames: "
                f"max |patch diff| {worst_p:.2e}, max |image diff| {worst_i:.2e} -> {'PASS' if ok else 'FAIL'} (tolerance {PATCH_TOLERANCE:g} / {TOLERANCE:g}); "
                f"at {cap} slots (host inputs copied in every run): {one:.2f} ms per frame at batch 1, {batch:.2f} ms per tile in a batch of {TILE_BATCH} run back to back")
        judged(line, ok)
        if provider == "CUDAExecutionProvider":
            # What ONNX Runtime's default would do instead: reported, not judged (the service turns TF32 off here).
            try:
                tf = open_graph("score.onnx", tf32=True)
                tf_p, tf_i = score_worst(tf, q, r, excluded, k, exp_p, exp_i)
                tf_timed = open_graph("score_full.onnx", tf32=True) if has_full else tf
                tf_one = median_ms(lambda: tf_timed.run(["patches", "image"], feeds(q, rf, xf, kf, 0)))
                say(f"{provider} with TF32 allowed (ONNX Runtime's default, not what the service runs): score graph max |patch diff| {tf_p:.2e}, "
                    f"max |image diff| {tf_i:.2e}; {tf_one:.2f} ms per frame at batch 1 at {cap} slots")
            except Exception as e:
                say(f"{provider} with TF32 allowed: the score graph did not run ({str(e).splitlines()[0]})")
        # The store graph: slot 1's rows (and whole frame) written into slot 0, every other slot as it was.
        store = open_graph("store.onnx")
        x, updates = store_feeds(m, r)
        good = one_slot_written(store.run([out for out, _ in updates], x), [x[source] for _, source in updates])
        line = f"{provider}: store graph writes one slot and leaves the others -> {'PASS' if good else 'FAIL'}"
        judged(line, good)
        if provider != "CPUExecutionProvider" and has_full:
            resident_times(ort, open_graph, timed, provider, m, q, rf, xf, kf)
        if views is not None:
            onnxruntime_views(open_graph, provider, views)


def store_feeds(m, r):
    """The store graph's inputs that write slot 1's rows (and whole frame) into slot 0, and each output's name
    with the input it updates."""
    rows, grids = r
    rad = int(m.get("radius", -1))
    x = {"slot": np.zeros((1, 1), dtype=np.int64)}
    updates = []
    for v in range(len(rows)):
        x[f"reservoir_{v}"] = rows[v]
        x[f"rows_{v}"] = np.ascontiguousarray(rows[v][1:2])
        updates.append((f"updated_{v}", f"reservoir_{v}"))
        if grids is not None:
            h, w = int(m["grid_height"]), int(m["grid_width"])
            x[f"grid_{v}"] = grids[v]
            x[f"frame_{v}"] = np.ascontiguousarray(slots_of(grids[v])[1:2, rad:rad + h, rad:rad + w, :])
            updates.append((f"updated_grid_{v}", f"grid_{v}"))
    return x, updates


def one_slot_written(after, before):
    """True when every buffer after the store holds before's slot 1 in slot 0 and its other slots as they were
    (window grids compared slot by slot, slots_of)."""
    per_slot = lambda a: slots_of(a) if a.ndim == 5 else a
    return all(np.array_equal(per_slot(a)[0], per_slot(b)[1]) and np.array_equal(per_slot(a)[1:], per_slot(b)[1:])
               for a, b in zip(after, before))


def resident_times(ort, open_graph, score, provider, m, q, rf, xf, kf):
    """The score and store graphs at the engine's capacity with the reservoir resident on the device, as the
    service holds it (OrtValues bound once; only a frame's views go in and its scores come out). The store
    graph writes its slot in place, its outputs bound to its inputs, on the CUDA provider also where the
    backbone runs on TensorRT (OnnxScoring.StoreInPlace); after the timed runs the buffers are read back and
    must hold slot 1 in slot 0 and every other slot as it was. The plain session.run timings copy the whole
    reservoir from the host in every run. score is the session of score_full.onnx already made on the
    provider (a second would build TensorRT's engine again)."""
    try:
        on_device = lambda a: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(a), "cuda", 0)
        x, updates = store_feeds(m, rf)
        resident = {source: on_device(x[source]) for _, source in updates}
        sb = score.io_binding()
        for name, value in resident.items():
            sb.bind_ortvalue_input(name, value)
        sb.bind_cpu_input("excluded", xf)
        sb.bind_cpu_input("k", kf)
        sb.bind_output("patches")
        sb.bind_output("image")

        def score_one():
            for v in range(len(q)):
                sb.bind_cpu_input(f"query_{v}", q[v][0])
            score.run_with_iobinding(sb)
            return sb.copy_outputs_to_cpu()
        scored = median_ms(score_one)
        store = open_graph("store_full.onnx", provider="CUDAExecutionProvider")
        tb = store.io_binding()
        for name, value in x.items():
            if name in resident:
                tb.bind_ortvalue_input(name, resident[name])
            else:
                tb.bind_cpu_input(name, value)
        for out, source in updates:  # each output bound to the buffer it updates
            tb.bind_ortvalue_output(out, resident[source])

        def store_one():
            store.run_with_iobinding(tb)
            tb.synchronize_outputs()
        stored = median_ms(store_one)
        cap = rf[0][0].shape[0]
        judged(f"{provider}, the reservoir resident on the device (IOBinding, as the service holds it), {cap} slots: "
               f"{scored:.3f} ms per frame scored, {stored:.3f} ms per frame stored in place (CUDA provider)", True)
        good = one_slot_written([resident[source].numpy() for _, source in updates], [x[source] for _, source in updates])
        judged(f"CUDAExecutionProvider: store graph in place on device buffers writes one slot and leaves the others -> "
               f"{'PASS' if good else 'FAIL'}", good)
    except Exception as e:  # a binding this machine's onnxruntime does not take is a finding, not the end of the check
        unproven.append(f"{provider}: the graphs with the reservoir resident on the device could not be timed "
                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")


def load_views(d, m):
    """The views graph's export: taps per tap name [F, C, h, w], expected views [F, P, D_v] and global [F, G]; None if absent."""
    if "views" not in m:
        return None
    taps = {t["name"]: np.load(os.path.join(d, f"taps_{t['name']}.npy")) for t in m["taps"]}
    views = [np.load(os.path.join(d, f"expected_view_{v}.npy")) for v in range(len(m["views"]))]
    return taps, views, np.load(os.path.join(d, "expected_global.npy"))


def views_worst(got, exp_views, exp_global):
    """Largest difference over every view and the global feature."""
    worst = max(float(np.abs(g - e).max()) for g, e in zip(got[:-1], exp_views))
    return max(worst, float(np.abs(got[-1] - exp_global).max()))


def onnxruntime_views(open_graph, provider, v):
    """views.onnx on one provider against the views the .NET eval built from the exported taps; on CUDA also with
    TF32 allowed, reported, not judged. open_graph(name, tf32) makes a session on the provider."""
    taps, exp_views, exp_global = v
    names = [f"view_{i}" for i in range(len(exp_views))] + ["global"]
    try:
        session = open_graph("views.onnx")
    except Exception as e:
        unproven.append(f"{provider}: the views graph's session did not start: {str(e).splitlines()[0]}")
        return
    worst = views_worst(session.run(names, taps), exp_views, exp_global)
    ok = worst <= VIEW_TOLERANCE
    frames = exp_global.shape[0]
    batch = median_ms(lambda: session.run(names, taps)) / frames
    line = (f"{provider} (session providers {session.get_providers()}): views graph against the .NET eval's views, {frames} frames: "
            f"max |diff| {worst:.2e} -> {'PASS' if ok else 'FAIL'} (tolerance {VIEW_TOLERANCE:g}); {batch:.2f} ms per frame in a batch of {frames}")
    judged(line, ok)
    if provider == "CUDAExecutionProvider":
        try:
            tf = open_graph("views.onnx", tf32=True)
            say(f"{provider} with TF32 allowed (ONNX Runtime's default, not what the service runs): views graph max |diff| "
                f"{views_worst(tf.run(names, taps), exp_views, exp_global):.2e}")
        except Exception as e:
            say(f"{provider} with TF32 allowed: the views graph did not run ({str(e).splitlines()[0]})")


def views_twin(torch, dev, d, m, taps):
    """The views graph's steps in PyTorch (ScoringGraphs.Views): per tap, the projection as a 1x1 convolution on the tap's own
    grid, bilinear alignment onto the patch grid (half-pixel centres), the layer norm's mean taken out (its scale cancels in
    the final L2), then per view an average pool of its degree and an L2 normalisation; the global feature is the global
    tap's average, L2-normalised. The weights are read from views.onnx."""
    import onnx
    from onnx import numpy_helper
    import torch.nn.functional as F
    init = {t.name: np.array(numpy_helper.to_array(t)) for t in onnx.load(os.path.join(d, "views.onnx")).graph.initializer}
    gh, gw = int(m["grid_height"]), int(m["grid_width"])
    tiny = 1e-30

    def unit(y):
        return y / torch.clamp(torch.sqrt((y * y).sum(dim=1, keepdim=True)), min=tiny)

    out = [None] * len(m["views"])
    for tap in m["taps"]:
        t = tap["name"]
        x = torch.from_numpy(taps[t]).to(dev)
        resized = (int(tap["height"]), int(tap["width"])) != (gh, gw)
        mine = [i for i, spec in enumerate(m["views"]) if spec["tap"] == t]
        if not mine:
            continue
        if f"{t}_projection" in init:
            w = torch.from_numpy(init[f"{t}_projection"]).to(dev)
            if w.shape[0] != sum(int(m["views"][i]["dim"]) for i in mine):
                raise ValueError(f"tap {t}: only some of its views are projected; the twin takes all or none")
            mean = ((x * torch.from_numpy(init[f"{t}_resize_weights"]).to(dev)) if resized else x).mean(dim=(1, 2, 3), keepdim=True)
            z = F.conv2d(x, w)
            if resized:
                z = F.interpolate(z, size=(gh, gw), mode="bilinear", align_corners=False)
            z = z - mean * torch.from_numpy(init[f"{t}_projection_sums"]).to(dev)
            parts = torch.split(z, [int(m["views"][i]["dim"]) for i in mine], dim=1)
        else:
            a = F.interpolate(x, size=(gh, gw), mode="bilinear", align_corners=False) if resized else x
            mu = a.mean(dim=(1, 2, 3), keepdim=True)
            var = ((a - mu) ** 2).mean(dim=(1, 2, 3), keepdim=True)
            parts = [(a - mu) / torch.sqrt(var + 1e-5)] * len(mine)
        for i, y in zip(mine, parts):
            degree = int(m["views"][i]["degree"])
            if degree > 1:
                y = F.avg_pool2d(y, degree, stride=1, padding=degree // 2, count_include_pad=True)
            y = unit(y)
            out[i] = y.permute(0, 2, 3, 1).reshape(y.shape[0], gh * gw, y.shape[1])
    g = torch.from_numpy(taps[m["global_tap"]]).to(dev).mean(dim=(2, 3))
    return out + [unit(g)]


def torch_check(m, q, r, excluded, k, top_n, exp_p, exp_i, d=None, v=None):
    say("== the graphs' operations in PyTorch on the GPU")
    try:
        import torch
    except ImportError as e:
        unproven.append(f"GPU arithmetic: torch is not installed here ({e})")
        return
    cuda = torch.cuda.is_available()
    if cuda:
        dev, label = torch.device("cuda"), "CUDA (PyTorch)"
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 products, as the service's graphs run on ONNX Runtime's CUDA provider (use_tf32 0)
        say(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
    else:
        # The same steps on the CPU: they check this twin of score.onnx against the .NET outputs, so that on a GPU
        # only the device's arithmetic is left to prove, not the script.
        dev, label = torch.device("cpu"), "CPU (PyTorch, no GPU here)"
        unproven.append(f"GPU arithmetic: torch {torch.__version__} sees no CUDA device; the graphs' steps ran on the CPU instead")
        say(f"torch {torch.__version__}: no CUDA device; the steps run on the CPU")

    def sync():
        if cuda:
            torch.cuda.synchronize()
    kk = int(k[0])
    ex = torch.from_numpy(excluded).to(dev).view(1, -1, 1)
    inf = torch.tensor(float("inf"), device=dev)

    rad = int(m.get("radius", -1))
    gh, gw = int(m["grid_height"]), int(m["grid_width"])
    blk = int(m["window_block"]) if rad >= 0 else 1
    span, hp, cols = 2 * rad + 1, gh + 2 * rad, blk + 2 * rad
    nb = (gw + 2 * rad + blk - 1) // blk
    # Where patch (y, x)'s dot at offset (dy, dx) lies in the band products (ScoringGraphs.WindowIndices):
    # padded row y+dy, block (x+dx)//B, offset dy, query column x - B*block + 2r, column (x+dx) % B of the block.
    window_index = None if rad < 0 else torch.tensor(
        [[((((y + dy) * nb + (x + dx) // blk) * span + dy) * cols + x - blk * ((x + dx) // blk) + 2 * rad) * blk + (x + dx) % blk
          for dy in range(span) for dx in range(span)]
         for y in range(gh) for x in range(gw)], dtype=torch.long, device=dev)
    block_columns = None if rad < 0 else (torch.arange(cols, device=dev) + blk * torch.arange(nb, device=dev)[:, None])

    def score(qs, rs, gs, ex):
        # qs[v]: [B, P, D]; rs[v]: [B, R, D, K]; gs[v]: [B, H+2r, blocks, D, Bc, R] or None. The same steps as score.onnx, batched over B.
        means = []
        for v, (qv, rv) in enumerate(zip(qs, rs)):
            # the query at its levels, as score.onnx and the managed search take it (kept rows and grids come at theirs)
            top = qv.abs().amax(dim=(1, 2), keepdim=True)
            step = torch.where(top > 0, top, torch.full_like(top, 63.0)) / 63.0
            qv = torch.clamp(torch.round(qv * (1.0 / step)), -63.0, 63.0) * step
            best = torch.matmul(qv.unsqueeze(1), rv).amax(dim=3)           # [B, R, P]: max-dot per slot over the kept rows
            if gs is not None:                                             # the window: every offset's dot, 0 outside the grid
                # As score.onnx: per padded row and block of Bc columns, the query's rows at the block's Bc + 2r
                # columns stacked by row offset, one matmul against every slot's block, then each patch's
                # (2r+1)^2 dots gathered from it (ScoringGraphs.Window), so no [R, P, D] product is made.
                b_, r_, d_ = rv.shape[0], rv.shape[1], rv.shape[2]
                qp = torch.nn.functional.pad(qv.view(b_, gh, gw, -1), (0, 0, 2 * rad, nb * blk - gw, 2 * rad, 2 * rad))
                qb = qp[:, :, block_columns]                               # [B, H+4r, blocks, Bc+2r, D]
                stack = torch.cat([qb[:, 2 * rad - dy:2 * rad - dy + hp] for dy in range(span)], dim=3)  # [B, H+2r, blocks, (2r+1)(Bc+2r), D]
                band = torch.matmul(stack, gs[v].reshape(b_, hp, nb, d_, blk * r_))  # [B, H+2r, blocks, (2r+1)(Bc+2r), Bc*R]
                window = band.reshape(b_, -1, r_)[:, window_index].amax(dim=2)  # [B, P, R]
                best = torch.maximum(best, window.transpose(1, 2))
            dist = torch.sqrt(torch.relu(2 - 2 * best))                    # unit distance
            dist = torch.where(ex, inf, dist)                              # excluded slots never count
            means.append(torch.topk(dist, kk, dim=1, largest=False).values.mean(dim=1))  # interval average
        patches = torch.stack(means).sum(0) / len(means)                   # mean over views
        return patches, torch.topk(patches, top_n, dim=1).values.mean(dim=1)

    frames = q[0].shape[0]
    rows, grids = r
    qs = [torch.from_numpy(x).to(dev) for x in q]
    rs = [torch.from_numpy(x).to(dev).unsqueeze(0) for x in rows]
    gs = None if grids is None else [torch.from_numpy(x).to(dev).unsqueeze(0) for x in grids]
    with torch.no_grad():
        patches, image = score(qs, [x.expand(frames, -1, -1, -1) for x in rs],
                               None if gs is None else [x.expand(frames, -1, -1, -1, -1, -1) for x in gs], ex)
        sync()
        worst_p = float((patches.cpu() - torch.from_numpy(exp_p)).abs().max())
        worst_i = float((image.cpu() - torch.from_numpy(exp_i)).abs().max())
        ok = worst_p <= PATCH_TOLERANCE and worst_i <= TOLERANCE
        line = (f"{label}: the score graph's steps against the .NET CPU outputs, {frames} frames: max |patch diff| {worst_p:.2e}, "
                f"max |image diff| {worst_i:.2e} -> {'PASS' if ok else 'FAIL'} (tolerance {PATCH_TOLERANCE:g} / {TOLERANCE:g})")
        judged(line, ok)

        # Timed at the engine's own capacity: the exported slots repeated, every slot included.
        cap = int(m.get("capacity_full", rows[0].shape[0]))
        rows_f, grids_f = full(r, cap)
        rs_f = [torch.from_numpy(x).to(dev).unsqueeze(0) for x in rows_f]
        gs_f = None if grids_f is None else [torch.from_numpy(x).to(dev).unsqueeze(0) for x in grids_f]
        ex_f = torch.zeros((1, cap, 1), dtype=torch.bool, device=dev)
        kk_full = max(1, int(0.3 * cap))

        def timed(b):
            nonlocal kk
            qb = [x[:1].expand(b, -1, -1).contiguous() for x in qs]
            rb = [x.expand(b, -1, -1, -1).contiguous() for x in rs_f]
            gb = None if gs_f is None else [x.expand(b, -1, -1, -1, -1, -1).contiguous() for x in gs_f]
            kk = kk_full
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            for _ in range(3):
                score(qb, rb, gb, ex_f)
            times = []
            for _ in range(RUNS):
                start.record()
                score(qb, rb, gb, ex_f)
                end.record()
                sync()
                times.append(start.elapsed_time(end))
            return float(np.median(times))

        if v is not None:
            torch.backends.cudnn.allow_tf32 = False
            taps, exp_views, exp_global = v
            try:
                got = [x.cpu().numpy() for x in views_twin(torch, dev, d, m, taps)]
                sync()
                worst = views_worst(got, exp_views, exp_global)
                ok = worst <= VIEW_TOLERANCE
                line = (f"{label}: the views graph's steps against the .NET eval's views, {exp_global.shape[0]} frames: "
                        f"max |diff| {worst:.2e} -> {'PASS' if ok else 'FAIL'} (tolerance {VIEW_TOLERANCE:g})")
                judged(line, ok)
            except ImportError as e:
                unproven.append(f"the views graph's steps in PyTorch: python's onnx (to read views.onnx's weights) is not installed here ({e})")
            except Exception as e:  # a twin that cannot follow this export's graph is a finding, not the end of the check
                line = f"{label}: the views graph's steps could not be run: FAIL ({type(e).__name__}: {e})"
                judged(line, False)
        if not cuda:
            return  # a CPU's times say nothing of a GPU's
        one, batch = timed(1), timed(TILE_BATCH)
        line = f"{label}, {cap} slots: {one:.3f} ms per frame at batch 1; {batch / TILE_BATCH:.3f} ms per tile in a batch of {TILE_BATCH} tiles, each against its own reservoir ({batch:.3f} ms the batch)"
        judged(line, True)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "out/device-check/graphs"
    if not os.path.exists(os.path.join(d, "manifest.json")):
        say(f"{d}/manifest.json is missing: run `scripts/device-check.sh --export` on a machine with the .NET SDK first, and carry {d}.")
        return 2
    t0 = time.time()
    m, q, r, excluded, k, exp_p, exp_i = load(d)
    machine()
    say(f"== export: {len(m['frames'])} frames of {m['patches']} patches, {len(m['dims'])} views of {m['dims'][0]} dims, "
        f"reservoir {m['held']} of {m['capacity']} slots x {m['keep']} rows, window radius {m.get('radius', -1)}, k {m['k']}, top {m['top_n']}; "
        f"the .NET CPU graph and managed kernel differed by {m['managed_max_patch_difference']:.1e}")
    views = load_views(d, m)
    if views is None:
        unproven.append("the views graph: this export has none (made by an older build)")
    onnxruntime_check(d, m, q, r, excluded, k, exp_p, exp_i, views)
    torch_check(m, q, r, excluded, k, int(m["top_n"]), exp_p, exp_i, d, views)
    unproven.append("the .NET service and eval on a GPU provider (the machine has no .NET SDK): the reservoir's device-resident "
                    "buffers and the store graph writing them in place have run on CUDA memory only as this check runs them")
    unproven.append("the backbone itself on a GPU provider (the export carries its taps, not the model) and the anomaly map, "
                    "which runs as managed code on the host")
    say()
    say("== proven")
    for line in proven:
        say("  + " + line)
    say("== not proven, and why")
    for line in unproven:
        say("  - " + line)
    failed = [line for line in proven + unproven if "FAIL" in line]
    say(f"device check finished in {time.time() - t0:.1f} s: {'FAILED' if failed else 'no check failed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
