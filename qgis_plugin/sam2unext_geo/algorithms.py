"""Processing algorithms: the same ``sam2unext-geo`` subprocess as the dialog, driven by feedback."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtGui import QIcon

from . import aoi, commands, environment, runner, settings
from .layers import scene_name

DEVICES = ("auto", "cpu", "cuda")
ICON = os.path.join(os.path.dirname(__file__), "icon.png")


def _executable() -> str:
    try:
        return environment.find_executable(settings.executable_setting() or None)
    except environment.EnvironmentProblem as exc:
        raise QgsProcessingException(str(exc)) from exc


def _run(args: list, feedback, out_dir, outputs=()) -> runner.RunResult:
    """Run the command with Processing feedback (progress, cancel, log); ``outputs``: the file
    names it writes in ``out_dir`` (only those, their temporary names and store are cleaned)."""
    feedback.pushCommandInfo(" ".join(args))
    stage = []

    def on_event(event: dict) -> None:
        label = commands.stage_label(event)
        if label and stage[-1:] != [label]:
            stage.append(label)
            feedback.setProgressText(label)
        pct = commands.progress_percent(event)
        if pct is not None:
            feedback.setProgress(pct)
        text = commands.describe_event(event)
        if text and event.get("event") == "warning":
            feedback.pushWarning(text)
        elif text:
            feedback.pushInfo(text)

    try:
        return runner.run_command(
            args, on_event=on_event, is_cancelled=feedback.isCanceled, out_dir=out_dir, outputs=outputs
        )
    except runner.CancelledRun as exc:
        raise QgsProcessingException(str(exc)) from exc
    except (environment.EnvironmentProblem, runner.CommandFailed, ValueError) as exc:
        raise QgsProcessingException(str(exc)) from exc


def _raster_path(alg, parameters, name, context) -> str:
    layer = alg.parameterAsRasterLayer(parameters, name, context)
    if layer is None:
        raise QgsProcessingException(f"Invalid raster for {name}.")
    path = layer.source().split("|")[0]
    if layer.providerType() != "gdal" or not os.path.isfile(path):
        raise QgsProcessingException(f"{layer.name()} is not a local raster file; export it to GeoTIFF first.")
    return path


def _load_on_completion(context: QgsProcessingContext, path: str, name: str, output: str) -> None:
    if path and context.project() is not None:
        context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails(name, context.project(), output))


class _Base(QgsProcessingAlgorithm):
    def group(self) -> str:
        return "Segmentation"

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return "segmentation"

    def icon(self) -> QIcon:
        return QIcon(ICON)

    def createInstance(self):  # noqa: N802 - QGIS API
        return type(self)()


class PredictAlgorithm(_Base):
    """``sam2unext:predict`` — probability GeoTIFF (+ polygons) for a raster layer."""

    INPUT, PRESET, CHECKPOINT = "INPUT", "PRESET", "CHECKPOINT"
    TILE_SIZE, OVERLAP, BATCH_SIZE, DEVICE = "TILE_SIZE", "OVERLAP", "BATCH_SIZE", "DEVICE"
    BANDS, THRESHOLD, VECTORIZE, OVERWRITE = "BANDS", "THRESHOLD", "VECTORIZE", "OVERWRITE"
    AOI_EXTENT, AOI_POLYGONS, RESUME = "AOI_EXTENT", "AOI_POLYGONS", "RESUME"
    TTA, REGULARIZE, REGULARIZE_TOLERANCE = "TTA", "REGULARIZE", "REGULARIZE_TOLERANCE"
    OUTPUT_FOLDER, PROBABILITY, POLYGONS = "OUTPUT_FOLDER", "PROBABILITY", "POLYGONS"

    def name(self) -> str:
        return "predict"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return "Segment raster (SAM2-UNeXT)"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return (
            "Runs sam2unext-geo predict over the raster: overlapping tiles, batched inference, "
            "a stitched probability GeoTIFF and (optionally) polygons in a GeoPackage, both in "
            "the output folder. Weights: a preset name ('demo' = bundled demo weights) or a "
            "checkpoint file (.safetensors, or an upstream .pth together with its preset). "
            "Area of interest (optional): an extent (e.g. the map canvas extent) or polygons (tick "
            "'Selected features only' to use a selection); only tiles touching it are run. "
            "The command runs in its own Python environment (PATH or the plugin settings)."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster"))
        self.addParameter(QgsProcessingParameterExtent(self.AOI_EXTENT, "Area of interest: extent", optional=True))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.AOI_POLYGONS,
                "Area of interest: polygons",
                [QgsProcessing.SourceType.TypeVectorPolygon],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.PRESET, "Preset ('demo' = bundled demo weights)", defaultValue="demo", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.CHECKPOINT,
                "Checkpoint file (overrides 'demo')",
                behavior=QgsProcessingParameterFile.Behavior.File,
                fileFilter="Checkpoints (*.safetensors *.pth *.pt)",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.TILE_SIZE,
                "Tile size in pixels (0 = model input size)",
                QgsProcessingParameterNumber.Type.Integer,
                0,
                minValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.OVERLAP,
                "Tile overlap (fraction)",
                QgsProcessingParameterNumber.Type.Double,
                0.25,
                minValue=0.0,
                maxValue=0.9,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.BATCH_SIZE, "Batch size", QgsProcessingParameterNumber.Type.Integer, 4, minValue=1
            )
        )
        self.addParameter(QgsProcessingParameterEnum(self.DEVICE, "Device", options=list(DEVICES), defaultValue=0))
        self.addParameter(
            QgsProcessingParameterString(self.BANDS, "Bands (e.g. 3,2,1 or 4,3,2,8; empty = default)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.THRESHOLD, "Threshold", QgsProcessingParameterNumber.Type.Double, 0.5, minValue=0.0, maxValue=1.0
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.TTA, commands.OPTION_LABELS["tta"], options=list(commands.TTA_MODES.values()), defaultValue=0
            )
        )
        self.addParameter(QgsProcessingParameterBoolean(self.VECTORIZE, commands.OPTION_LABELS["vector"], True))
        self.addParameter(QgsProcessingParameterBoolean(self.REGULARIZE, commands.OPTION_LABELS["regularize"], False))
        tolerance = QgsProcessingParameterNumber(
            self.REGULARIZE_TOLERANCE,
            commands.OPTION_LABELS["regularize_tolerance"] + " in metres (0 = two pixel sizes)",
            QgsProcessingParameterNumber.Type.Double,
            0.0,
            minValue=0.0,
        )
        tolerance.setFlags(tolerance.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(tolerance)
        overwrite = QgsProcessingParameterBoolean(self.OVERWRITE, commands.OPTION_LABELS["overwrite"], False)
        overwrite.setFlags(overwrite.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(overwrite)
        resume = QgsProcessingParameterBoolean(self.RESUME, commands.OPTION_LABELS["resume"], False)
        resume.setFlags(resume.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(resume)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.PROBABILITY, "Probability"))
        self.addOutput(
            QgsProcessingOutputVectorLayer(self.POLYGONS, "Polygons", QgsProcessing.SourceType.TypeVectorPolygon)
        )

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802 - QGIS API
        scene = _raster_path(self, parameters, self.INPUT, context)
        preset = self.parameterAsString(parameters, self.PRESET, context).strip() or None
        checkpoint = self.parameterAsFile(parameters, self.CHECKPOINT, context).strip() or None
        if preset == "demo":
            preset, checkpoint = None, checkpoint or "demo"
        out_dir = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        try:
            commands.check_output_folder(out_dir)
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc
        bands = self.parameterAsString(parameters, self.BANDS, context).strip()
        bbox, bbox_crs, aoi_file = self._area_of_interest(parameters, context)
        try:
            options = commands.PredictOptions(
                scene=scene,
                out_dir=out_dir,
                preset=preset,
                checkpoint=checkpoint,
                tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context) or None,
                overlap=self.parameterAsDouble(parameters, self.OVERLAP, context),
                batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
                bands=commands.normalize_bands(bands) if bands else None,
                threshold=self.parameterAsDouble(parameters, self.THRESHOLD, context),
                vector=self.parameterAsBool(parameters, self.VECTORIZE, context),
                overwrite=self.parameterAsBool(parameters, self.OVERWRITE, context),
                resume=self.parameterAsBool(parameters, self.RESUME, context),
                bbox=bbox,
                bbox_crs=bbox_crs,
                aoi=aoi_file,
                tta=list(commands.TTA_MODES)[self.parameterAsEnum(parameters, self.TTA, context)],
                regularize=self.parameterAsBool(parameters, self.REGULARIZE, context),
                regularize_tolerance=self.parameterAsDouble(parameters, self.REGULARIZE_TOLERANCE, context) or None,
            )
            args = commands.predict_args(_executable(), options)
            result = _run(args, feedback, out_dir, commands.output_names(options))
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc
        finally:
            aoi.remove_file(aoi_file)
        if not result.done:
            raise QgsProcessingException("sam2unext-geo finished without reporting any output.")
        done = result.done[-1]
        name = scene_name(done.get("scene") or scene)
        _load_on_completion(context, done["probability"], f"{name} probability", self.PROBABILITY)
        _load_on_completion(context, done.get("vector") or "", f"{name} polygons", self.POLYGONS)
        return {self.OUTPUT_FOLDER: out_dir, self.PROBABILITY: done["probability"], self.POLYGONS: done.get("vector")}

    def _area_of_interest(self, parameters, context) -> tuple:
        """``(bbox, bbox_crs, temporary polygon file)`` from AOI_EXTENT / AOI_POLYGONS (all None: whole scene).

        Polygons (only the selected ones when the source says so) go to a temporary GeoPackage
        that ``processAlgorithm`` removes when the run ends.
        """
        has_polygons = parameters.get(self.AOI_POLYGONS) not in (None, "")
        has_extent = parameters.get(self.AOI_EXTENT) not in (None, "")
        if has_polygons and has_extent:
            raise QgsProcessingException("Give either an area of interest extent or polygons, not both.")
        try:
            if has_polygons:
                source = self.parameterAsSource(parameters, self.AOI_POLYGONS, context)
                if source is None:
                    raise QgsProcessingException("The area of interest polygons cannot be read.")
                return None, None, aoi.write_polygons(source.getFeatures(), source.sourceCrs())
            if has_extent:
                extent = self.parameterAsExtent(parameters, self.AOI_EXTENT, context)
                crs = self.parameterAsExtentCrs(parameters, self.AOI_EXTENT, context)
                return aoi.extent_bbox(extent), (aoi.crs_text(crs) if crs.isValid() else None), None
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc
        return None, None, None


class VectorizeAlgorithm(_Base):
    """``sam2unext:vectorize`` — polygons from a probability raster at a threshold."""

    INPUT, THRESHOLD, OUTPUT = "INPUT", "THRESHOLD", "OUTPUT"

    def name(self) -> str:
        return "vectorize"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return "Vectorize probability raster"

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return "Runs sam2unext-geo vectorize: polygons (GeoPackage) where the probability raster reaches the threshold."

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Probability raster"))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.THRESHOLD, "Threshold", QgsProcessingParameterNumber.Type.Double, 0.5, minValue=0.0, maxValue=1.0
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(self.OUTPUT, "Polygons", fileFilter="GeoPackage (*.gpkg)")
        )

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802 - QGIS API
        prob = _raster_path(self, parameters, self.INPUT, context)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        threshold = self.parameterAsDouble(parameters, self.THRESHOLD, context)
        args = commands.vectorize_args(_executable(), prob, output, threshold, overwrite=True)
        existed = os.path.exists(output)
        feedback.setProgress(10)
        try:
            _run(args, feedback, None)
        except QgsProcessingException:
            if not existed and os.path.exists(output):
                os.remove(output)  # cancelled or failed: leave nothing behind
            raise
        produced = output
        if not os.path.isfile(produced):
            raise QgsProcessingException(f"sam2unext-geo vectorize did not write {produced}.")
        _load_on_completion(context, produced, f"{scene_name(prob)} polygons", self.OUTPUT)
        return {self.OUTPUT: produced}
