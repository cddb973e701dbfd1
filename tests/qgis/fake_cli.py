"""A stand-in for ``sam2unext-geo`` speaking the same JSON-lines progress stream (tests only).

Runs under the system Python with GDAL's bindings. ``predict`` writes ``<stem>_prob.tif`` (uint8
probability, same grid/CRS as the scene) and ``<stem>_polygons.gpkg`` through temporary names,
sleeping ``FAKE_CLI_DELAY`` seconds (default 0.05) between progress lines; SIGTERM removes the
temporary files and exits 143, like the real command. ``FAKE_CLI_BROKEN=1`` makes every command
fail the way a broken environment does.
"""

import json
import os
import signal
import sys
import time

TEMPS = []


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def on_term(signum, frame):
    for path in TEMPS:
        if os.path.exists(path):
            os.remove(path)
    sys.exit(143)


def option(args, name, default=None):
    return args[args.index(name) + 1] if name in args else default


def predict(args):
    from osgeo import gdal

    gdal.UseExceptions()
    scene, out_dir = args[0], option(args, "-o")
    stem = os.path.splitext(os.path.basename(scene))[0]
    src = gdal.Open(scene)
    w, h = src.RasterXSize, src.RasterYSize
    tiles = 8
    emit(event="start", scene=stem, tiles=tiles, width=w, height=h)
    os.makedirs(out_dir, exist_ok=True)
    prob = os.path.join(out_dir, f"{stem}_prob.tif")
    tmp = prob + ".tmp.tif"
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
    vector = None
    if "--no-vector" not in args:
        vector = os.path.join(out_dir, f"{stem}_polygons.gpkg")
        write_polygon(vector, src)
        TEMPS.append(vector)
        emit(event="progress", stage="vectorize", done=1, total=1)
    emit(event="done", scene=stem, probability=prob, vector=vector, tiles_run=tiles,
         tiles_skipped=0, seconds=0.1, area=0.0)
    emit(event="complete", scenes=1, seconds=0.1)


def write_polygon(path, src):
    """One polygon over the right half of ``src`` (an open GDAL dataset), written through a temp name."""
    from osgeo import ogr, osr

    w, h, gt = src.RasterXSize, src.RasterYSize, src.GetGeoTransform()
    tmp = path + ".tmp.gpkg"
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


def main(argv):
    signal.signal(signal.SIGTERM, on_term)
    if os.environ.get("FAKE_CLI_BROKEN"):
        sys.stderr.write("ModuleNotFoundError: No module named 'torch'\n")
        return 1
    if argv[:1] == ["--version"]:
        print("sam2unext-geo 0.1.0 (fake)")
        return 0
    if argv[:1] == ["models"]:
        print("preset          family      input\n--------------  ----------  -----\n"
              "sam2unext-test  SAM2-UNeXT  256\nsam2unet-fake   SAM2-UNet   256\n"
              "demo (--checkpoint demo)  SAM2-UNeXT  256\n\nPredicting needs a trained checkpoint.")
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
