/** The case manifest (GET cases/{id}/, docs/DELINEATION.md). */
export interface Segment {
  index: number;
  label: string;
  color: [number, number, number];
}

export interface SeriesInfo {
  series_id: number;
  shape: [number, number, number];
  spacing: [number, number, number];
  image_ids: string[];
  suv_factors?: Array<number | null>;
}

export interface VersionInfo {
  number: number;
  sha256: string;
  created_at: string;
  volumes_cc?: Record<string, number>;
}

export interface Manifest {
  id?: number;
  /** 'review': a blinded panel review (approve instead of submit, then the blinding question). */
  mode?: 'delineation' | 'review';
  /** What the page calls the case: the trial id, or the review code for the panel. */
  title?: string;
  trial_number?: string;
  status: string;
  locked: boolean;
  segments: Segment[];
  ct: SeriesInfo | null;
  pet: SeriesInfo | null;
  latest_version: VersionInfo | null;
  idle_cutoff_seconds?: number;
  /** The electronic signature's wording (defaults: the physician's submission). */
  signature?: { button: string; statement: string; done: string };
  urls: {
    labelmap: string;
    versions: string;
    interpolate: string;
    sessions: string;
    events_template: string;
    submit: string;
    timing?: string;
    /** The labelmap to start from when nothing is saved in this stream yet (review: the submitted GTV). */
    start_labelmap?: string;
    /** Review: where the answer to "Which arm do you think this case was?" goes. */
    guess?: string;
  };
  /** Review: the answer given already ('' when none). */
  guess?: string;
  proposal?: { labelmap: string; uncertainty: string; model: string };
}

/** W/L presets on keys 1–5: [label, width, center]. */
export const WL_PRESETS: Array<[string, number, number]> = [
  ['Soft tissue', 400, 40],
  ['Lung', 1500, -600],
  ['Liver', 150, 90],
  ['Bone', 2500, 480],
  ['Brain', 80, 40],
];
