/**
 * The delineation workstation: Cornerstone3D MPR of the planning CT with fused PET, a labelmap segmentation on
 * the CT grid edited with Cornerstone's BrushTool (fill / erase / PET-SUV threshold strategies) and
 * LabelMapEditWithContourTool (freehand fill), autosave in the wire encoding, timing events and e-signature.
 */
import {
  RenderingEngine, Enums as csEnums, addVolumesToViewports, cache, getRenderingEngine, eventTarget, init as csInit, metaData, setVolumesForViewports,
  utilities as csUtils, volumeLoader, canRenderFloatTextures, getConfiguration, cornerstoneStreamingImageVolumeLoader, type Types,
} from '@cornerstonejs/core';
import { init as dicomImageLoaderInit } from '@cornerstonejs/dicom-image-loader';
import * as cst from '@cornerstonejs/tools';
import { Autosaver, type SaveState } from './autosave';
import {
  countLabels, decodeLabelmap, decodeUint8Volume, encodeLabelmap, flipZ, labelmapDigest, rleEncode, type Shape,
} from './codec';
import { WL_PRESETS, type Manifest } from './manifest';
import { createPetThresholdStrategy, PET_THRESHOLD_STRATEGY_NAME } from './petThreshold';
import { EventLog } from './timing';
import { buildUI, formatDuration, type UI } from './ui';
import { zlibStoredSync } from './zlibSync';

/* eslint-disable @typescript-eslint/no-explicit-any */
const {
  ToolGroupManager, BrushTool, LabelMapEditWithContourTool, StackScrollTool, PanTool, ZoomTool, WindowLevelTool,
  CrosshairsTool, segmentation, Enums: csToolsEnums,
} = cst;
const { MouseBindings, SegmentationRepresentations, ToolModes } = csToolsEnums;

const RE_ID = 'ct-rendering-engine';
const TG_ID = 'ct-tools';
const CT_ID = 'cornerstoneStreamingImageVolume:ct';
const PET_ID = 'cornerstoneStreamingImageVolume:pet';
const UNC_ID = 'ct-uncertainty';
const GTV_SEG = 'GTV';
const GTV_VOL = 'ct-gtv-labelmap';
const AI_SEG = 'AI';
const AI_VOL = 'ct-ai-labelmap';
const ORIENTATIONS = {
  axial: csEnums.OrientationAxis.AXIAL,
  sagittal: csEnums.OrientationAxis.SAGITTAL,
  coronal: csEnums.OrientationAxis.CORONAL,
} as const;
type ViewName = keyof typeof ORIENTATIONS;
const VIEW_NAMES = Object.keys(ORIENTATIONS) as ViewName[];
const vpId = (n: ViewName) => `viewport-${n}`;
const VIEWPORT_IDS = VIEW_NAMES.map(vpId);

const TOOL_NAMES: Record<string, string> = {
  brush: 'GTVBrush',
  eraser: 'GTVEraser',
  threshold: 'GTVThreshold',
  freehand: LabelMapEditWithContourTool.toolName,
  windowlevel: WindowLevelTool.toolName,
  pan: PanTool.toolName,
  zoom: ZoomTool.toolName,
  crosshairs: CrosshairsTool.toolName,
};
const EDIT_TOOLS = new Set(['brush', 'eraser', 'threshold', 'freehand']);

export interface ContourTrialApi {
  ready: boolean;
  baseVersion: number;
  locked: boolean;
  saveState: SaveState;
  zFlipped: boolean;
  timings: Record<string, number>;
  labelmapDigest(): { nonzero: number; weighted: number };
  flushSave(): Promise<void>;
  canvasStats(viewportId: string): { width: number; height: number; nonBlack: number; mean: number } | null;
  setTool(tool: string): void;
  brushSizeMm(): number;
  /** The axial slice shown, as a server slice index (z of the wire encoding). */
  axialSlice(): number;
  /** Move the axial view to server slice z (tests, screenshots). */
  showAxialSlice(z: number): void;
  /** Page coordinates of voxel (row, column) on the axial slice shown (tests draw through real mouse events). */
  axialPointOnPage(row: number, column: number): { x: number; y: number };
  /** Force a save of the current labelmap and time it (bench): encode, and encode + POST + acknowledgement. */
  timedSave(): Promise<{ encodeMs: number; roundTripMs: number; bytes: number; version: number }>;
  sessionId: string | null;
  errors: string[];
}

declare global {
  interface Window {
    contourTrial: ContourTrialApi;
  }
}

/** A volume's actor in a viewport (actor UIDs are generated; `referencedId` is the volume id). */
function actorOf(vp: Types.IVolumeViewport, volumeId: string): unknown {
  const entry = vp.getActors().find((a: any) => a.referencedId === volumeId || a.uid === volumeId);
  return entry?.actor;
}

async function fetchChecked(url: string, init: RequestInit = {}): Promise<Response> {
  const r = await fetch(url, { credentials: 'same-origin', ...init });
  if (!r.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${r.status}`);
  return r;
}

export async function boot(root: HTMLElement): Promise<void> {
  const t0 = performance.now();
  const manifestUrl = root.dataset.manifestUrl!;
  const csrf = root.dataset.csrfToken ?? '';
  const api: ContourTrialApi = {
    ready: false, baseVersion: 0, locked: false, saveState: 'saved', zFlipped: false, timings: {}, errors: [],
    labelmapDigest: () => ({ nonzero: 0, weighted: 0 }),
    flushSave: async () => undefined,
    canvasStats: () => null,
    setTool: () => undefined,
    brushSizeMm: () => 0,
    axialSlice: () => -1,
    showAxialSlice: () => undefined,
    axialPointOnPage: () => ({ x: 0, y: 0 }),
    timedSave: async () => ({ encodeMs: 0, roundTripMs: 0, bytes: 0, version: 0 }),
    sessionId: null,
  };
  window.contourTrial = api;
  // for diagnosis from the console / browser tests
  (api as any).debug = { cache, metaData, cst, canRenderFloatTextures, getConfiguration, getViewport: (id: string) => getRenderingEngine(RE_ID)?.getViewport(id) };
  window.addEventListener('error', (e) => api.errors.push(String(e.message)));
  window.addEventListener('unhandledrejection', (e) => api.errors.push(String((e as PromiseRejectionEvent).reason)));

  const log = new EventLog({ csrfToken: csrf });
  log.record('open', { url: location.pathname });

  const manifest: Manifest = await (await fetchChecked(manifestUrl, { headers: { Accept: 'application/json' } })).json();
  const ui = buildUI(root, manifest);
  if (!manifest.ct) {
    ui.status.textContent = 'This case has no CT yet.';
    return;
  }
  const proposal = manifest.proposal; // AI arm only; never touch proposal URLs otherwise

  // ---- timing session -------------------------------------------------------------------------------------------
  let sessionId: string | null = null;
  const sessionReady = manifest.locked
    ? Promise.resolve()
    : fetch(manifest.urls.sessions, {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf }, body: '{}',
      })
        .then(async (r) => {
          if (!r.ok) throw new Error(`session ${r.status}`);
          const s = await r.json();
          sessionId = String(s.id);
          api.sessionId = sessionId;
          log.start(manifest.urls.events_template.replace('{id}', sessionId));
        })
        .catch((e) => api.errors.push(`session: ${e}`));
  installInteractionListeners(root, log);

  // ---- Cornerstone ----------------------------------------------------------------------------------------------
  ui.status.textContent = 'Starting the viewer…';
  csInit();
  dicomImageLoaderInit({ maxWebWorkers: Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 1)) });
  volumeLoader.registerVolumeLoader('cornerstoneStreamingImageVolume', cornerstoneStreamingImageVolumeLoader as any);
  cst.init();
  [BrushTool, LabelMapEditWithContourTool, StackScrollTool, PanTool, ZoomTool, WindowLevelTool, CrosshairsTool].forEach((t) =>
    cst.addTool(t as any),
  );

  // PET voxels in SUV: the loader scales by scalingModule.suvbw (factor per instance from the server).
  const pet = manifest.pet && manifest.pet.image_ids.length ? manifest.pet : null;
  if (pet) {
    const factors = new Map<string, number>();
    pet.image_ids.forEach((id, i) => {
      const f = pet.suv_factors?.[i];
      if (typeof f === 'number' && isFinite(f) && f > 0) factors.set(id, f);
    });
    metaData.addProvider((type: string, imageId: string) => {
      if (type !== 'scalingModule') return undefined;
      const f = factors.get(imageId);
      return f === undefined ? undefined : { suvbw: f };
    }, 10000);
  }

  // Start the labelmap/proposal downloads while the volumes stream.
  const latest = manifest.latest_version;
  const labelmapBody = latest
    ? fetchChecked(manifest.urls.labelmap, { cache: 'no-store' }).then(async (r) => ({
        version: Number(r.headers.get('X-Contour-Version') ?? latest.number),
        body: new Uint8Array(await r.arrayBuffer()),
      }))
    : null;
  const startBody = !latest && manifest.urls.start_labelmap
    ? fetchChecked(manifest.urls.start_labelmap, { cache: 'no-store' }).then(async (r) => new Uint8Array(await r.arrayBuffer()))
    : null;
  const proposalBody = proposal ? fetchChecked(proposal.labelmap).then(async (r) => new Uint8Array(await r.arrayBuffer())) : null;
  const uncertaintyBody = proposal
    ? fetchChecked(proposal.uncertainty).then(async (r) => new Uint8Array(await r.arrayBuffer())).catch((e) => {
        api.errors.push(`uncertainty: ${e}`);
        return null;
      })
    : null;

  ui.status.textContent = 'Loading the CT…';
  const ctImageIds = manifest.ct.image_ids;
  const ctVolume = (await volumeLoader.createAndCacheVolume(CT_ID, { imageIds: [...ctImageIds] })) as Types.IImageVolume;
  // The wadouri loader may reverse the (sorted) imageIds: flip z in encode/decode when it did.
  const zFlipped = ctVolume.imageIds[0] !== ctImageIds[0];
  if (zFlipped && ctVolume.imageIds[0] !== ctImageIds[ctImageIds.length - 1]) {
    api.errors.push('CT volume slice order is neither the manifest order nor its reverse');
  }
  api.zFlipped = zFlipped;
  const [dx, dy, dz] = ctVolume.dimensions;
  const shape: Shape = [dz, dy, dx];
  const [sx, sy, sz] = ctVolume.spacing;
  const voxelCc = (sx * sy * sz) / 1000;
  let petVolume: Types.IImageVolume | null = null;
  if (pet) petVolume = (await volumeLoader.createAndCacheVolume(PET_ID, { imageIds: [...pet.image_ids] })) as Types.IImageVolume;

  const renderingEngine = new RenderingEngine(RE_ID);
  renderingEngine.setViewports(
    VIEW_NAMES.map((n) => ({
      viewportId: vpId(n), element: ui.viewports[n], type: csEnums.ViewportType.ORTHOGRAPHIC,
      defaultOptions: { orientation: ORIENTATIONS[n], background: [0, 0, 0] as Types.Point3 },
    })),
  );
  // The first CT slice is on screen when the axial view renders a slice whose pixels have arrived (renders of
  // slices still streaming in show nothing). Marked for the benchmark (bench/viewer_bench.py).
  const axialK = (): number => {
    const vp = renderingEngine.getViewport(vpId('axial')) as Types.IVolumeViewport;
    const ijk = csUtils.transformWorldToIndex(ctVolume.imageData, vp.getCamera().focalPoint as Types.Point3);
    return Math.min(dz - 1, Math.max(0, Math.round(ijk[2])));
  };
  const onAxialRendered = () => {
    const frames = (ctVolume as any).cachedFrames as number[] | undefined;
    if (frames?.[axialK()] !== csEnums.ImageQualityStatus.FULL_RESOLUTION) return;
    ui.viewports.axial.removeEventListener(csEnums.Events.IMAGE_RENDERED, onAxialRendered);
    api.timings.firstRenderMs = performance.now() - t0;
    performance.mark('ct-first-render');
  };
  ui.viewports.axial.addEventListener(csEnums.Events.IMAGE_RENDERED, onAxialRendered);
  const onVolumeLoaded = (evt: any) => {
    const id = evt.detail?.volumeId;
    if (id === CT_ID) performance.mark('ct-loaded');
    if (id === PET_ID) {
      api.timings.petLoadedMs = performance.now() - t0;
      performance.mark('pet-loaded');
    }
  };
  eventTarget.addEventListener(csEnums.Events.IMAGE_VOLUME_LOADING_COMPLETED, onVolumeLoaded);
  api.axialSlice = () => (zFlipped ? dz - 1 - axialK() : axialK());
  api.axialPointOnPage = (row: number, column: number) => {
    const vp = renderingEngine.getViewport(vpId('axial')) as Types.IVolumeViewport;
    const world = csUtils.transformIndexToWorld(ctVolume.imageData, [column, row, axialK()] as Types.Point3);
    const [cx, cy] = vp.worldToCanvas(world as Types.Point3);
    const rect = ui.viewports.axial.getBoundingClientRect();
    return { x: rect.left + cx, y: rect.top + cy };
  };
  api.showAxialSlice = (z: number) => {
    const vp = renderingEngine.getViewport(vpId('axial')) as Types.IVolumeViewport;
    const camera = vp.getCamera();
    const fp = camera.focalPoint as Types.Point3;
    const ijk = csUtils.transformWorldToIndex(ctVolume.imageData, fp);
    const k = zFlipped ? dz - 1 - z : z;
    const target = csUtils.transformIndexToWorld(ctVolume.imageData, [ijk[0], ijk[1], k] as Types.Point3);
    const d = [0, 1, 2].map((i) => target[i] - fp[i]);
    const position = camera.position as Types.Point3;
    vp.setCamera({
      focalPoint: fp.map((v, i) => v + d[i]) as Types.Point3,
      position: position.map((v, i) => v + d[i]) as Types.Point3,
    });
    vp.render();
  };
  const viewports = () => VIEWPORT_IDS.map((id) => renderingEngine.getViewport(id) as Types.IVolumeViewport);

  const ctLoaded = new Promise<void>((resolve) => {
    const onDone = (evt: any) => {
      if (evt.detail?.volumeId === CT_ID) {
        eventTarget.removeEventListener(csEnums.Events.IMAGE_VOLUME_LOADING_COMPLETED, onDone);
        resolve();
      }
    };
    eventTarget.addEventListener(csEnums.Events.IMAGE_VOLUME_LOADING_COMPLETED, onDone);
  });
  (ctVolume as any).load();
  if (petVolume) (petVolume as any).load();

  const volumesToShow: Array<{ volumeId: string }> = [{ volumeId: CT_ID }];
  if (petVolume) volumesToShow.push({ volumeId: PET_ID });
  await setVolumesForViewports(renderingEngine, volumesToShow as any, VIEWPORT_IDS);

  let preset = 1;
  let petVisible = !!petVolume;
  let petOpacity = 0.9;
  let suvMax = 8;
  let uncertaintyVisible = false;
  let uncertaintyReady = false; // set below, once the CT is loaded
  const applyPreset = (i: number) => {
    preset = i;
    const [, w, c] = WL_PRESETS[i - 1];
    const voiRange = csUtils.windowLevel.toLowHighRange(w, c);
    for (const vp of viewports()) vp.setProperties({ voiRange }, CT_ID);
    renderingEngine.render();
  };
  /**
   * Overlay opacity is set on the volume actor's scalar-opacity function (as Cornerstone's PET/CT fusion example
   * does, with mapper sample distance 1): through the thin MPR slab vtk.js attenuates per-sample opacity, so the
   * effective overlay is much fainter than the nominal value — values near 1 give a readable fusion.
   */
  const setOverlayOpacity = (vp: Types.IVolumeViewport, volumeId: string, points: Array<[number, number]>) => {
    const actor = actorOf(vp, volumeId) as any;
    if (!actor) return;
    actor.getMapper().setSampleDistance?.(1.0);
    const fn = actor.getProperty().getScalarOpacity(0);
    fn.removeAllPoints();
    for (const [x, y] of points) fn.addPoint(x, y);
    actor.getProperty().setScalarOpacity(0, fn);
  };
  const applyPet = () => {
    if (!petVolume) return;
    const a = Math.min(0.99, Math.max(0, petOpacity));
    for (const vp of viewports()) {
      vp.setProperties({ colormap: { name: 'hsv' }, voiRange: { lower: 0, upper: suvMax } }, PET_ID);
      // transparent below 5 % of the SUV window, full slider opacity from 15 %
      // (the function is tabulated over its point range: keep the range tight; values beyond clamp to the ends)
      setOverlayOpacity(vp, PET_ID, [[0, 0], [0.05 * suvMax, 0], [0.15 * suvMax, a], [suvMax, a]]);
      (actorOf(vp, PET_ID) as any)?.setVisibility?.(petVisible);
    }
    renderingEngine.render();
  };
  const applyUncertainty = () => {
    if (!uncertaintyReady) return;
    for (const vp of viewports()) {
      vp.setProperties({ colormap: { name: 'Inferno (matplotlib)' }, voiRange: { lower: 0, upper: 255 } }, UNC_ID);
      setOverlayOpacity(vp, UNC_ID, [[0, 0], [8, 0], [30, 0.8], [255, 0.97]]);
      (actorOf(vp, UNC_ID) as any)?.setVisibility?.(uncertaintyVisible);
    }
    renderingEngine.render();
  };
  applyPreset(1);
  applyPet();
  VIEW_NAMES.forEach((n) => (ui.sliceInfo[n].textContent = `${n}: loading…`));

  // Derived volumes (labelmaps, uncertainty) need the metadata of every CT slice: wait for the CT to stream in.
  ui.status.textContent = 'Loading the CT slices…';
  await ctLoaded;
  api.timings.ctLoadedMs = performance.now() - t0;

  // Uncertainty: a derived volume on the CT grid holding the uint8 levels, shown as a heat map (hidden at first).
  if (uncertaintyBody) {
    const body = await uncertaintyBody;
    if (body) {
      try {
        const levels = await decodeUint8Volume(body, shape, zFlipped);
        const unc = volumeLoader.createAndCacheDerivedVolume(CT_ID, { volumeId: UNC_ID, targetBuffer: { type: 'Uint8Array' } });
        (unc.voxelManager as any).setCompleteScalarDataArray(levels);
        await addVolumesToViewports(renderingEngine, [{ volumeId: UNC_ID }] as any, VIEWPORT_IDS);
        uncertaintyReady = true;
        applyUncertainty();
      } catch (e) {
        api.errors.push(`uncertainty: ${e}`);
      }
    }
  }

  // ---- segmentation ---------------------------------------------------------------------------------------------
  ui.status.textContent = 'Loading the contour…';
  const gtv = volumeLoader.createAndCacheDerivedLabelmapVolume(CT_ID, { volumeId: GTV_VOL });
  const gtvVM = gtv.voxelManager as any;
  let loading = true;
  let baseVersion = 0;
  let proposalData: Uint8Array | null = null;
  if (proposalBody) {
    try {
      proposalData = await decodeLabelmap(await proposalBody, shape, zFlipped);
    } catch (e) {
      api.errors.push(`proposal: ${e}`);
    }
  }
  let startData: Uint8Array | null = null;
  if (labelmapBody) {
    const { version, body } = await labelmapBody;
    startData = await decodeLabelmap(body, shape, zFlipped);
    baseVersion = version;
  } else if (startBody) {
    startData = await decodeLabelmap(await startBody, shape, zFlipped); // review: the submitted GTV (base 0)
  } else if (proposalData) {
    startData = proposalData.slice(); // the AI arm starts from the AI mask (base version 0)
  }
  if (startData) gtvVM.setCompleteScalarDataArray(startData);

  const segmentsConfig: Record<number, any> = {};
  manifest.segments.forEach((s, i) => (segmentsConfig[s.index] = { label: s.label, active: i === 0 }));
  const segList: any[] = [{
    segmentationId: GTV_SEG,
    representation: { type: SegmentationRepresentations.Labelmap, data: { volumeId: GTV_VOL } },
    config: { label: 'GTV', segments: segmentsConfig },
  }];
  if (proposalData) {
    const ai = volumeLoader.createAndCacheDerivedLabelmapVolume(CT_ID, { volumeId: AI_VOL });
    (ai.voxelManager as any).setCompleteScalarDataArray(proposalData);
    segList.push({
      segmentationId: AI_SEG,
      representation: { type: SegmentationRepresentations.Labelmap, data: { volumeId: AI_VOL } },
      config: { label: 'AI proposal (reference)', segments: { 1: { label: 'AI', locked: true } } },
    });
  }
  segmentation.addSegmentations(segList);
  const repMap: Record<string, any[]> = {};
  for (const id of VIEWPORT_IDS) {
    repMap[id] = [{ segmentationId: GTV_SEG, type: SegmentationRepresentations.Labelmap }];
    if (proposalData) repMap[id].push({ segmentationId: AI_SEG, type: SegmentationRepresentations.Labelmap });
  }
  await segmentation.addLabelmapRepresentationToViewportMap(repMap);
  let aiOutlineVisible = false;
  for (const id of VIEWPORT_IDS) {
    segmentation.activeSegmentation.setActiveSegmentation(id, GTV_SEG);
    for (const s of manifest.segments) segmentation.config.color.setSegmentIndexColor(id, GTV_SEG, s.index, [...s.color, 255] as any);
    if (proposalData) {
      segmentation.config.style.setRenderInactiveSegmentations(id, true);
      segmentation.config.color.setSegmentIndexColor(id, AI_SEG, 1, [255, 230, 0, 255] as any);
      segmentation.config.visibility.setSegmentationRepresentationVisibility(
        id, { segmentationId: AI_SEG, type: SegmentationRepresentations.Labelmap }, aiOutlineVisible,
      );
    }
  }
  if (proposalData) {
    segmentation.config.style.setStyle(
      { type: SegmentationRepresentations.Labelmap, segmentationId: AI_SEG } as any,
      { renderFill: false, renderFillInactive: false, renderOutline: true, renderOutlineInactive: true, outlineWidth: 1, outlineWidthInactive: 1, outlineOpacity: 1, outlineOpacityInactive: 1 } as any,
    );
  }
  let outlineOnly = false;
  const applyGtvStyle = () => {
    segmentation.config.style.setStyle(
      { type: SegmentationRepresentations.Labelmap, segmentationId: GTV_SEG } as any,
      {
        renderFill: !outlineOnly, renderFillInactive: !outlineOnly, fillAlpha: 0.35, fillAlphaInactive: 0.2,
        renderOutline: true, renderOutlineInactive: true, outlineWidth: outlineOnly ? 2 : 1, outlineOpacity: 1,
      } as any,
    );
    ui.buttons.outline.setAttribute('aria-pressed', String(outlineOnly));
    renderingEngine.render();
  };
  applyGtvStyle();
  let activeSegment = manifest.segments[0]?.index ?? 1;
  segmentation.segmentIndex.setActiveSegmentIndex(GTV_SEG, activeSegment);
  segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(GTV_SEG);
  if (proposalData) segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(AI_SEG);

  // ---- tools -----------------------------------------------------------------------------------------------------
  const toolGroup = ToolGroupManager.createToolGroup(TG_ID)!;
  VIEWPORT_IDS.forEach((id) => toolGroup.addViewport(id, RE_ID));
  let thresholdRange: [number, number] = [2.5, 100];
  const petThreshold = createPetThresholdStrategy(() => (petVolume ? PET_ID : null), () => thresholdRange);
  const noInterpolationKeys = (tool: any) => {
    // BrushTool binds 'i'/'e' to labelmap-interpolation actions (a package we do not ship); keep Enter/Escape.
    const actions = tool?.configuration?.actions ?? {};
    for (const k of Object.keys(actions)) if (!/preview/i.test(k)) delete actions[k];
  };
  toolGroup.addToolInstance(TOOL_NAMES.brush, BrushTool.toolName, { activeStrategy: 'FILL_INSIDE_CIRCLE', brushSize: 5 });
  toolGroup.addToolInstance(TOOL_NAMES.eraser, BrushTool.toolName, { activeStrategy: 'ERASE_INSIDE_CIRCLE', brushSize: 5 });
  toolGroup.addToolInstance(TOOL_NAMES.threshold, BrushTool.toolName, {
    strategies: { ...(BrushTool as any).defaults?.strategies, [PET_THRESHOLD_STRATEGY_NAME]: petThreshold },
    activeStrategy: PET_THRESHOLD_STRATEGY_NAME, brushSize: 5, threshold: { range: thresholdRange, isDynamic: false },
  });
  [TOOL_NAMES.brush, TOOL_NAMES.eraser, TOOL_NAMES.threshold].forEach((n) => noInterpolationKeys(toolGroup.getToolInstance(n)));
  {
    const thr: any = toolGroup.getToolInstance(TOOL_NAMES.threshold);
    if (thr && !thr.configuration.strategies[PET_THRESHOLD_STRATEGY_NAME]) thr.configuration.strategies[PET_THRESHOLD_STRATEGY_NAME] = petThreshold;
  }
  toolGroup.addTool(LabelMapEditWithContourTool.toolName);
  toolGroup.addTool(StackScrollTool.toolName);
  toolGroup.addTool(PanTool.toolName);
  toolGroup.addTool(ZoomTool.toolName);
  toolGroup.addTool(WindowLevelTool.toolName);
  toolGroup.addTool(CrosshairsTool.toolName, {
    getReferenceLineColor: (id: string) => ({ [vpId('axial')]: 'rgb(200, 0, 0)', [vpId('sagittal')]: 'rgb(200, 200, 0)', [vpId('coronal')]: 'rgb(0, 200, 0)' })[id] ?? 'white',
    getReferenceLineControllable: () => true,
    getReferenceLineDraggableRotatable: () => false,
    getReferenceLineSlabThicknessControlsOn: () => false,
  });
  toolGroup.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] });
  toolGroup.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
  toolGroup.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });

  let brushMm = 5;
  const setBrushSize = (mm: number) => {
    brushMm = Math.max(1, Math.min(50, Math.round(mm)));
    for (const n of [TOOL_NAMES.brush, TOOL_NAMES.eraser, TOOL_NAMES.threshold]) {
      const t: any = toolGroup.getToolInstance(n);
      if (t) {
        t.configuration.brushSize = brushMm; // BrushTool: radius in world units (mm), see circularCursor
        t.invalidateBrushCursor?.();
      }
    }
    ui.brushSize.textContent = `${brushMm} mm`;
    ui.brushSize.dataset.mm = String(brushMm);
    renderingEngine.render();
  };
  setBrushSize(5);

  let locked = !!manifest.locked;
  let paused = false;
  let currentTool = 'brush';
  const primary = [{ mouseButton: MouseBindings.Primary }];
  const setTool = (tool: string) => {
    if (!(tool in TOOL_NAMES)) return;
    if ((locked || paused) && EDIT_TOOLS.has(tool)) tool = 'windowlevel';
    if (tool === 'threshold' && !petVolume) tool = 'brush';
    for (const [key, name] of Object.entries(TOOL_NAMES)) {
      if (key === tool) continue;
      if (key === 'crosshairs') toolGroup.setToolEnabled(name);
      else if (key === 'freehand') {
        if (toolGroup.getToolOptions(name)?.mode === ToolModes.Active) toolGroup.setToolPassive(name);
        toolGroup.setToolDisabled(name);
      } else toolGroup.setToolPassive(name);
    }
    toolGroup.setToolActive(TOOL_NAMES[tool], { bindings: primary });
    currentTool = tool;
    for (const [key, b] of Object.entries(ui.buttons)) {
      if (key.startsWith('tool:')) b.setAttribute('aria-pressed', String(key === `tool:${tool}`));
    }
    root.dataset.tool = tool;
    renderingEngine.render();
  };
  api.setTool = setTool;
  api.brushSizeMm = () => brushMm;

  // ---- slice position ------------------------------------------------------------------------------------------
  const axisIndex: Record<ViewName, number> = { axial: 2, sagittal: 0, coronal: 1 };
  const updateSliceInfo = (n: ViewName) => {
    const vp = renderingEngine.getViewport(vpId(n)) as any;
    if (!vp) return;
    const idx = vp.getSliceIndex?.() ?? 0;
    const total = vp.getNumberOfSlices?.() ?? 0;
    const fp = vp.getCamera().focalPoint as number[];
    const label = n[0].toUpperCase() + n.slice(1);
    const axis = ['x', 'y', 'z'][axisIndex[n]];
    ui.sliceInfo[n].textContent = `${label} ${idx + 1}/${total} · ${axis} ${fp[axisIndex[n]].toFixed(1)} mm`;
    ui.sliceInfo[n].dataset.slice = String(idx + 1);
  };
  for (const n of VIEW_NAMES) {
    ui.viewports[n].addEventListener(csEnums.Events.CAMERA_MODIFIED, () => updateSliceInfo(n));
    ui.viewports[n].addEventListener(csEnums.Events.VOLUME_NEW_IMAGE, () => updateSliceInfo(n));
  }

  // ---- GTV volume, digest ----------------------------------------------------------------------------------------
  const currentData = (): Uint8Array => {
    const a = gtvVM.getCompleteScalarDataArray();
    return a instanceof Uint8Array ? a : Uint8Array.from(a);
  };
  let volumeTimer: ReturnType<typeof setTimeout> | null = null;
  const updateVolume = () => {
    volumeTimer = null;
    const counts = countLabels(currentData(), Math.max(2, ...manifest.segments.map((s) => s.index)));
    const total = counts.slice(1).reduce((a, b) => a + b, 0) * voxelCc;
    ui.volume.dataset.cc = total.toFixed(3);
    const parts = manifest.segments.map((s) => `${s.label} ${(counts[s.index] * voxelCc).toFixed(2)} cm³`);
    ui.volume.textContent = manifest.segments.length > 1 ? `GTV ${total.toFixed(2)} cm³ (${parts.join(', ')})` : `GTV ${total.toFixed(2)} cm³`;
    for (const s of manifest.segments) ui.volume.dataset[`cc${s.index}`] = (counts[s.index] * voxelCc).toFixed(3);
  };
  const scheduleVolume = (delay = 300) => {
    if (volumeTimer) clearTimeout(volumeTimer);
    volumeTimer = setTimeout(updateVolume, delay);
  };
  api.labelmapDigest = () => labelmapDigest(currentData(), shape, zFlipped);

  // ---- autosave ---------------------------------------------------------------------------------------------------
  const SAVE_TEXT: Record<SaveState, string> = {
    saved: 'Saved', saving: 'Saving…', dirty: 'Unsaved changes', error: 'Save failed — retrying', conflict: 'Not saved: conflict',
  };
  const saver = new Autosaver({
    url: manifest.urls.versions, csrfToken: csrf, baseVersion,
    encode: () => encodeLabelmap(currentData(), shape, zFlipped),
    encodeSync: () => zlibStoredSync(rleEncode(flipZ(currentData(), shape, zFlipped))),
    sessionId: () => sessionId,
    onState: (state, info) => {
      api.saveState = state;
      api.baseVersion = info.version;
      ui.saveState.dataset.state = state;
      ui.saveState.dataset.version = String(info.version);
      ui.saveState.textContent =
        state === 'saved' ? (info.version ? `Saved (version ${info.version})` : 'Nothing saved yet') : info.message && state !== 'conflict' ? `${SAVE_TEXT[state]}: ${info.message}` : SAVE_TEXT[state];
      ui.saveState.title = info.message ?? '';
      if (state === 'conflict') {
        ui.conflictBanner.textContent = info.message || 'A newer version was saved elsewhere (another tab?) — reload to continue';
        ui.conflictBanner.hidden = false;
        if (!locked) setLocked(false);
      }
    },
  });
  api.baseVersion = baseVersion;
  ui.saveState.dataset.version = String(baseVersion);
  ui.saveState.textContent = baseVersion ? `Saved (version ${baseVersion})` : 'Nothing saved yet';
  api.flushSave = () => saver.flush();
  api.timedSave = async () => {
    const e0 = performance.now();
    const bytes = (await encodeLabelmap(currentData(), shape, zFlipped)).byteLength;
    const encodeMs = performance.now() - e0;
    const r0 = performance.now();
    saver.markDirty();
    await saver.flush();
    return { encodeMs, roundTripMs: performance.now() - r0, bytes, version: saver.baseVersion };
  };

  let lastEditEvent = -Infinity;
  eventTarget.addEventListener(csToolsEnums.Events.SEGMENTATION_DATA_MODIFIED, (evt: any) => {
    if (evt.detail?.segmentationId !== GTV_SEG || loading) return;
    scheduleVolume();
    if (locked) return;
    saver.markDirty();
    const now = performance.now();
    if (now - lastEditEvent >= 250) {
      lastEditEvent = now;
      log.record('edit', { segment: evt.detail?.segmentIndex ?? activeSegment, tool: currentTool });
    }
  });

  // ---- lock / conflict --------------------------------------------------------------------------------------------
  function setLocked(submitted: boolean) {
    locked = true;
    if (submitted) {
      api.locked = true;
      root.dataset.locked = 'true';
      ui.lockedBanner.hidden = false;
      saver.stop();
    }
    for (const name of [TOOL_NAMES.brush, TOOL_NAMES.eraser, TOOL_NAMES.threshold]) toolGroup.setToolDisabled(name);
    if (toolGroup.getToolOptions(TOOL_NAMES.freehand)?.mode === ToolModes.Active) toolGroup.setToolPassive(TOOL_NAMES.freehand);
    toolGroup.setToolDisabled(TOOL_NAMES.freehand);
    for (const key of ['tool:brush', 'tool:eraser', 'tool:freehand', 'tool:threshold', 'undo', 'redo', 'interpolate']) {
      if (ui.buttons[key]) ui.buttons[key].disabled = true;
    }
    ui.submitButton.disabled = true;
    if (ui.segmentSelect) ui.segmentSelect.disabled = true;
    setTool('windowlevel');
  }

  // ---- undo / redo / interpolation -------------------------------------------------------------------------------
  const history = (csUtils as any).HistoryMemo.DefaultHistoryMemo;
  history.size = 50; // clears anything recorded while loading
  const undo = () => !locked && history.canUndo && history.undo();
  const redo = () => !locked && history.canRedo && history.redo();
  let interpolating = false;
  const interpolate = async () => {
    if (locked || interpolating) return;
    interpolating = true;
    ui.status.textContent = `Interpolating segment ${activeSegment}…`;
    try {
      const before = currentData().slice();
      const body = await encodeLabelmap(before, shape, zFlipped);
      const r = await fetch(`${manifest.urls.interpolate}?segment=${activeSegment}`, {
        method: 'POST', credentials: 'same-origin', body: body as BodyInit,
        headers: { 'Content-Type': 'application/vnd.contourtrial.labelmap', 'X-CSRFToken': csrf },
      });
      if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
      const after = await decodeLabelmap(new Uint8Array(await r.arrayBuffer()), shape, zFlipped);
      if (locked) return;
      const put = (data: Uint8Array) => {
        gtvVM.setCompleteScalarDataArray(data.slice());
        segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(GTV_SEG);
      };
      put(after);
      // one undoable step on Cornerstone's history ring
      history.push({ id: `interpolate-${Date.now()}`, operationType: 'labelmap', restoreMemo: (isUndo?: boolean) => put(isUndo ? before : after) });
      ui.status.textContent = `Interpolated segment ${activeSegment}.`;
    } catch (e) {
      ui.status.textContent = `Interpolation failed: ${e}`;
      api.errors.push(`interpolate: ${e}`);
    } finally {
      interpolating = false;
    }
  };

  // ---- toggles -----------------------------------------------------------------------------------------------------
  const togglePet = () => {
    if (!petVolume) return;
    petVisible = !petVisible;
    ui.buttons.pet.setAttribute('aria-pressed', String(petVisible));
    root.dataset.pet = String(petVisible);
    applyPet();
  };
  const toggleUncertainty = () => {
    if (!uncertaintyReady) return;
    uncertaintyVisible = !uncertaintyVisible;
    ui.buttons.uncertainty?.setAttribute('aria-pressed', String(uncertaintyVisible));
    root.dataset.uncertainty = String(uncertaintyVisible);
    applyUncertainty();
  };
  const toggleAiOutline = () => {
    if (!proposalData) return;
    aiOutlineVisible = !aiOutlineVisible;
    for (const id of VIEWPORT_IDS) {
      segmentation.config.visibility.setSegmentationRepresentationVisibility(
        id, { segmentationId: AI_SEG, type: SegmentationRepresentations.Labelmap }, aiOutlineVisible,
      );
    }
    ui.buttons.aioutline?.setAttribute('aria-pressed', String(aiOutlineVisible));
    root.dataset.aiOutline = String(aiOutlineVisible);
    renderingEngine.render();
  };
  const resetViews = () => {
    for (const vp of viewports()) vp.resetCamera();
    applyPreset(preset);
    applyPet();
    VIEW_NAMES.forEach(updateSliceInfo);
  };

  // ---- pause -------------------------------------------------------------------------------------------------------
  let pausedAt = 0;
  let pausedTotal = 0;
  let toolBeforePause = 'brush';
  const setPaused = (on: boolean) => {
    if (on === paused) return;
    paused = on;
    root.dataset.paused = String(on);
    ui.pauseOverlay.hidden = !on;
    ui.pauseButton.textContent = on ? 'Resume' : 'Pause';
    if (on) {
      pausedAt = performance.now();
      toolBeforePause = currentTool;
      log.record('pause');
      VIEW_NAMES.forEach((n) => (ui.viewports[n].style.visibility = 'hidden'));
      toolGroup.setToolPassive(TOOL_NAMES[currentTool]);
    } else {
      pausedTotal += performance.now() - pausedAt;
      log.record('resume');
      VIEW_NAMES.forEach((n) => (ui.viewports[n].style.visibility = ''));
      setTool(toolBeforePause);
    }
  };
  ui.pauseButton.addEventListener('click', () => setPaused(!paused));
  ui.resumeButton.addEventListener('click', () => setPaused(false));
  const timerStart = performance.now();
  setInterval(() => {
    const now = performance.now();
    const elapsed = now - timerStart - pausedTotal - (paused ? now - pausedAt : 0);
    ui.timer.textContent = formatDuration(elapsed);
    ui.timer.dataset.seconds = String(Math.floor(elapsed / 1000));
  }, 500);

  // ---- submit -------------------------------------------------------------------------------------------------------
  ui.submitButton.addEventListener('click', () => {
    if (locked) return;
    ui.submitError.hidden = true;
    ui.submitPassword.value = '';
    if (typeof ui.submitDialog.showModal === 'function') ui.submitDialog.showModal();
    else ui.submitDialog.setAttribute('open', '');
    ui.submitPassword.focus();
  });
  ui.submitCancel.addEventListener('click', () => ui.submitDialog.close());
  const showSubmitError = (msg: string) => {
    ui.submitError.textContent = msg;
    ui.submitError.hidden = false;
  };
  const submit = async () => {
    if (locked) return;
    const password = ui.submitPassword.value;
    if (!password) return showSubmitError('Enter your password to sign.');
    ui.submitConfirm.disabled = true;
    try {
      if (saver.baseVersion === 0 && !saver.hasUnsaved()) saver.markDirty(); // the starting (AI) labelmap must be a version
      await saver.flush();
      if (saver.state === 'conflict') return showSubmitError(saver.message);
      if (saver.state !== 'saved' || saver.baseVersion === 0) return showSubmitError(`The contour could not be saved (${saver.message || saver.state}); try again.`);
      const r = await fetch(manifest.urls.submit, {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf },
        body: JSON.stringify({ password, version: saver.baseVersion }),
      });
      const data = await r.json().catch(() => ({}));
      if (r.status === 200) {
        ui.submitDialog.close();
        setLocked(true);
        const sig = data.signature;
        const done = manifest.signature?.done ?? 'Submitted and locked';
        ui.lockedBanner.textContent = `${done} — version ${data.version}${sig ? `, signed by ${sig.signer_name} at ${new Date(sig.signed_at).toLocaleString()}` : ''}.`;
        if (manifest.urls.guess && !manifest.guess) askGuess();
        log.record('key', { action: 'submitted', version: data.version });
        void log.flush();
      } else if (r.status === 403) {
        showSubmitError(data.detail || 'Wrong password — not submitted.');
      } else {
        showSubmitError(data.detail || `Not submitted (${r.status}).`);
      }
    } catch (e) {
      showSubmitError(`Not submitted: ${e}`);
    } finally {
      ui.submitConfirm.disabled = false;
    }
  };
  ui.submitConfirm.addEventListener('click', () => void submit());

  // Review: after approving, "Which arm do you think this case was?" (the answer feeds the blinding indices).
  const askGuess = () => {
    if (typeof ui.guessDialog.showModal === 'function') ui.guessDialog.showModal();
    else ui.guessDialog.setAttribute('open', '');
  };
  ui.guessDialog.addEventListener('click', async (e) => {
    const b = (e.target as HTMLElement).closest('button[data-guess]') as HTMLButtonElement | null;
    if (!b || !manifest.urls.guess) return;
    const r = await fetch(manifest.urls.guess, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf },
      body: JSON.stringify({ guess: b.dataset.guess }),
    });
    if (r.ok) {
      ui.guessDialog.close();
      root.dataset.guess = b.dataset.guess;
    } else {
      const data = await r.json().catch(() => ({}));
      ui.guessError.textContent = data.detail || `Not recorded (${r.status}).`;
      ui.guessError.hidden = false;
    }
  });
  if (manifest.locked && manifest.urls.guess && !manifest.guess) askGuess();
  ui.submitPassword.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      void submit();
    }
  });

  // ---- buttons and keyboard ------------------------------------------------------------------------------------------
  const setSegment = (index: number) => {
    activeSegment = index;
    segmentation.segmentIndex.setActiveSegmentIndex(GTV_SEG, index);
    if (ui.segmentSelect) ui.segmentSelect.value = String(index);
    root.dataset.segment = String(index);
  };
  ui.segmentSelect?.addEventListener('change', () => setSegment(Number(ui.segmentSelect!.value)));
  ui.toolbar.addEventListener('click', (e) => {
    const b = (e.target as HTMLElement).closest('button');
    if (!b) return;
    if (b.dataset.tool) setTool(b.dataset.tool);
    else if (b.dataset.preset) applyPreset(Number(b.dataset.preset));
    else if (b.dataset.action === 'undo') undo();
    else if (b.dataset.action === 'redo') redo();
    else if (b.dataset.action === 'interpolate') void interpolate();
    else if (b.dataset.action === 'outline') { outlineOnly = !outlineOnly; applyGtvStyle(); }
    else if (b.dataset.action === 'pet') togglePet();
    else if (b.dataset.action === 'uncertainty') toggleUncertainty();
    else if (b.dataset.action === 'aioutline') toggleAiOutline();
    else if (b.dataset.action === 'reset') resetViews();
    else if (b.dataset.action === 'help') ui.help.showModal();
  });
  ui.petOpacity.addEventListener('input', () => {
    petOpacity = Number(ui.petOpacity.value) / 100;
    applyPet();
  });
  ui.suvMax.addEventListener('change', () => {
    const v = Number(ui.suvMax.value);
    if (v > 0) suvMax = v;
    applyPet();
  });
  const updateThreshold = () => {
    const lo = Number(ui.thresholdMin.value);
    const hi = Number(ui.thresholdMax.value);
    if (isFinite(lo) && isFinite(hi) && hi > lo) thresholdRange = [lo, hi];
    const t: any = toolGroup.getToolInstance(TOOL_NAMES.threshold);
    if (t) t.configuration.threshold = { ...t.configuration.threshold, range: thresholdRange };
  };
  ui.thresholdMin.addEventListener('change', updateThreshold);
  ui.thresholdMax.addEventListener('change', updateThreshold);

  document.addEventListener('keydown', (e) => {
    const target = e.target as HTMLElement;
    if (target && (target.tagName === 'INPUT' || target.tagName === 'SELECT' || target.tagName === 'TEXTAREA')) return;
    if (ui.submitDialog.open) return;
    if (paused) return;
    const k = e.key;
    const ctrl = e.ctrlKey || e.metaKey;
    let handled = true;
    if (ctrl && (k === 'z' || k === 'Z') && !e.shiftKey) undo();
    else if (ctrl && (k === 'y' || k === 'Y' || ((k === 'z' || k === 'Z') && e.shiftKey))) redo();
    else if (ctrl || e.altKey) handled = false;
    else if (k === 'b') setTool('brush');
    else if (k === 'e') setTool('eraser');
    else if (k === 'f') setTool('freehand');
    else if (k === 't') setTool('threshold');
    else if (k === '[') setBrushSize(brushMm - 1);
    else if (k === ']') setBrushSize(brushMm + 1);
    else if (k >= '1' && k <= '5') applyPreset(Number(k));
    else if (k === 'o') { outlineOnly = !outlineOnly; applyGtvStyle(); }
    else if (k === 'p') togglePet();
    else if (k === 'u') toggleUncertainty();
    else if (k === 'a') toggleAiOutline();
    else if (k === 'i') void interpolate();
    else if (k === 'r') resetViews();
    else if (k === '?') (ui.help.open ? ui.help.close() : ui.help.showModal());
    else handled = false;
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  }, true);

  // ---- pagehide ------------------------------------------------------------------------------------------------------
  window.addEventListener('pagehide', () => {
    log.record('close');
    saver.saveOnPageHide();
    log.beacon();
  });

  // ---- canvas stats (tests) ----------------------------------------------------------------------------------------
  api.canvasStats = (viewportId: string) => {
    const vp = renderingEngine.getViewport(viewportId) as any;
    const canvas: HTMLCanvasElement | undefined = vp?.getCanvas?.() ?? vp?.canvas;
    if (!canvas) return null;
    const ctx = canvas.getContext('2d');
    if (!ctx) return null;
    const { width, height } = canvas;
    const img = ctx.getImageData(0, 0, width, height).data;
    let nonBlack = 0;
    let sum = 0;
    for (let i = 0; i < img.length; i += 4) {
      const v = img[i] + img[i + 1] + img[i + 2];
      sum += v / 3;
      if (v > 15) nonBlack++;
    }
    const n = width * height || 1;
    return { width, height, nonBlack: nonBlack / n, mean: sum / n };
  };

  // ---- ready ---------------------------------------------------------------------------------------------------------
  if (locked) {
    setLocked(true);
  } else {
    setTool('brush');
  }
  if (!petVolume) {
    ui.buttons.pet.disabled = true;
    ui.buttons['tool:threshold'].disabled = true;
  }
  root.dataset.pet = String(petVisible);
  setSegment(activeSegment);
  api.timings.setupMs = performance.now() - t0;
  renderingEngine.render();
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  VIEW_NAMES.forEach(updateSliceInfo);
  updateVolume();
  loading = false;
  history.size = 50;
  await sessionReady;
  api.timings.readyMs = performance.now() - t0;
  api.baseVersion = saver.baseVersion;
  api.ready = true;
  root.dataset.ready = 'true';
  performance.mark('workstation-ready');
  ui.status.textContent = locked ? 'Submitted and locked (read-only).' : 'Ready.';
}

function installInteractionListeners(root: HTMLElement, log: EventLog): void {
  root.addEventListener('pointerdown', (e) => log.record('pointer', { type: 'down', button: e.button }), { capture: true, passive: true });
  root.addEventListener('pointermove', () => log.pointerMove(), { capture: true, passive: true });
  root.addEventListener('wheel', (e) => log.record('wheel', { dy: Math.sign(e.deltaY) }), { capture: true, passive: true });
  document.addEventListener('keydown', (e) => log.record('key', { key: e.key.length === 1 ? e.key : e.key.slice(0, 12) }), { capture: true, passive: true });
  document.addEventListener('visibilitychange', () => log.record('visibility', { state: document.visibilityState }));
  window.addEventListener('focus', () => log.record('focus'));
  window.addEventListener('blur', () => log.record('blur'));
}
