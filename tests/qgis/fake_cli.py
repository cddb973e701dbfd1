"""A stand-in for ``sam2unext-geo`` speaking the same JSON-lines progress stream (tests only).

Runs under the system Python with GDAL's bindings. ``predict`` writes ``<stem>_prob.tif`` (uint8
probability, same grid/CRS as the scene) and ``<stem>_prob_polygons.gpkg`` through temporary names
like the real command's (``.<final name>.<8 hex>.<tag>.tif``) and keeps a resumable store
``<stem>_prob.tif.partial/`` while running, sleeping ``FAKE_CLI_DELAY`` seconds (default 0.05)
between progress lines (stage ``load`` first). SIGTERM removes the temporary files, keeps the
``.partial`` store (as the real command does, for ``--resume``) and exits 143. An existing output
without ``--overwrite`` is an ``error`` event with ``"options": ["overwrite"]``.
``FAKE_CLI_CHECK_DELAY`` makes ``--version`` and ``models`` take that long (seconds).
``FAKE_CLI_BROKEN=1`` makes every command fail the way a broken environment does.
``FAKE_CLI_UNWRITABLE=1`` makes ``predict`` refuse its ``-o`` folder with the real command's words
(``cli/inputs.py``: the tests run as root, for whom no folder is read-only).
"""

import json
import os
import shutil
import signal
import sys
import time
import uuid

TEMPS = []


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def on_term(signum, frame):
    for path in TEMPS:
        if os.path.exists(path):
            os.remove(path)
    sys.exit(143)


def temp_name(final, tag):
    folder, name = os.path.split(final)
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.{tag}.tif")


def option(args, name, default=None):
    return args[args.index(name) + 1] if name in args else default


def predict(args):
    from osgeo import gdal

    gdal.UseExceptions()
    scene, out_dir = args[0], option(args, "-o")
    stem = os.path.splitext(os.path.basename(scene))[0]
    if os.environ.get("FAKE_CLI_UNWRITABLE"):
        message = f"output folder {out_dir} is not writable; choose another with -o"
        emit(event="error", message=message, exit_code=2)
        sys.stderr.write(f"error: {message}\n")
        sys.exit(2)
    src = gdal.Open(scene)
    w, h = src.RasterXSize, src.RasterYSize
    tiles = 8
    os.makedirs(out_dir, exist_ok=True)
    prob = os.path.join(out_dir, f"{stem}_prob.tif")
    vector = None if "--no-vector" in args else os.path.join(out_dir, f"{stem}_prob_polygons.gpkg")
    for path in (prob, vector):
        if path and os.path.exists(path) and "--overwrite" not in args:
            message = f"output {path} already exists; pass --overwrite to replace it"
            emit(event="error", message=message, exit_code=2, options=["overwrite"])
            sys.stderr.write(f"error: {message}\n")
            sys.exit(2)
    emit(event="progress", stage="load", done=0, total=1)
    emit(event="start", scene=stem, tiles=tiles, width=w, height=h)
    emit(event="progress", stage="load", done=1, total=1)
    store = prob + ".partial"
    os.makedirs(os.path.join(store, "done"), exist_ok=True)
    with open(os.path.join(store, "manifest.json"), "w") as f:
        f.write("{}")
    tmp = temp_name(prob, "strips")
    TEMPS.append(tmp)
    dst = gdal.GetDriverByName("GTiff").Create(tmp, w, h, 1, gdal.GDT_Byte)
    dst.SetGeoTransform(src.GetGeoTransform())
    dst.SetProjection(src.GetProjection())
    band = dst.GetRasterBand(1)
    band.SetNoDataValue(0)
    row = bytes(int(255 * x / max(w - 1, 1)) for x in range(w))
    for i in range(tiles):
        time.sleep(float(os.environ.get("FAKE_CLI_DELAY", "0.05")))
        emit(event="progress", stage="predict", done=i + 1, total=tiles)
    for y in range(h):
        band.WriteRaster(0, y, w, 1, row)
    dst = None
    os.replace(tmp, prob)
    TEMPS.remove(tmp)
    TEMPS.append(prob)
    if vector:
        write_polygon(vector, src)
        TEMPS.append(vector)
        emit(event="progress", stage="vectorize", done=1, total=1)
    shutil.rmtree(store)  # success: the store goes
    emit(
        event="done",
        scene=stem,
        probability=prob,
        vector=vector,
        tiles_run=tiles,
        tiles_skipped=0,
        seconds=0.1,
        area=0.0,
    )
    emit(event="complete", scenes=1, seconds=0.1)


def write_polygon(path, src):
    """One polygon over the right half of ``src`` (an open GDAL dataset), written through a temp name."""
    from osgeo import ogr, osr

    w, h, gt = src.RasterXSize, src.RasterYSize, src.GetGeoTransform()
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp.gpkg")
    TEMPS.append(tmp)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(tmp)
    layer = ds.CreateLayer("polygons", osr.SpatialReference(wkt=src.GetProjection()), ogr.wkbPolygon)
    x0, x1 = gt[0] + gt[1] * w / 2, gt[0] + gt[1] * w
    y0, y1 = gt[3], gt[3] + gt[5] * h
    feat = ogr.Feature(layer.GetLayerDefn())
    feat.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"))
    layer.CreateFeature(feat)
    ds = None
    os.replace(tmp, path)
    TEMPS.remove(tmp)


def vectorize(args):
    from osgeo import gdal

    gdal.UseExceptions()
    prob = args[0]
    out = option(args, "-o") or os.path.splitext(prob)[0] + "_polygons.gpkg"
    if os.path.exists(out) and "--overwrite" not in args:
        sys.stderr.write(f"error: {out} exists; pass --overwrite\n")
        return 2
    write_polygon(out, gdal.Open(prob))
    print(f"{prob}: 1 polygons\n  polygons: {out}")
    return 0


def log_args(argv):
    """FAKE_CLI_ARGS_LOG: append the arguments (and the --aoi file's feature count) as one JSON line."""
    path = os.environ.get("FAKE_CLI_ARGS_LOG")
    if not path:
        return
    record = {"argv": argv}
    if "--aoi" in argv:
        from osgeo import ogr

        ds = ogr.Open(option(argv, "--aoi"))
        record["aoi_features"] = ds.GetLayer(0).GetFeatureCount() if ds is not None else None
        ds = None
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def main(argv):
    signal.signal(signal.SIGTERM, on_term)
    log_args(argv)
    if os.environ.get("FAKE_CLI_BROKEN"):
        sys.stderr.write("ModuleNotFoundError: No module named 'torch'\n")
        return 1
    if argv[:1] in (["--version"], ["models"]):
        time.sleep(float(os.environ.get("FAKE_CLI_CHECK_DELAY", "0")))
    if argv[:1] == ["--version"]:
        print("sam2unext-geo 0.1.0 (fake)")
        return 0
    if argv[:1] == ["models"]:
        print(
            "preset          family      input\n--------------  ----------  -----\n"
            "sam2unext-test  SAM2-UNeXT  256\nsam2unet-fake   SAM2-UNet   256\n"
            "demo (--checkpoint demo)  SAM2-UNeXT  256\n\nPredicting needs a trained checkpoint."
        )
        return 0
    if argv[:1] == ["vectorize"]:
        return vectorize(argv[1:])
    if argv[:1] == ["predict"]:
        try:
            predict(argv[1:])
        except SystemExit:
            raise
        return 0
    sys.stderr.write(f"unknown command {argv}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
