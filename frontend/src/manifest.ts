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
  id: number;
  trial_number: string;
  status: string;
  locked: boolean;
  segments: Segment[];
  ct: SeriesInfo | null;
  pet: SeriesInfo | null;
  latest_version: VersionInfo | null;
  idle_cutoff_seconds: number;
  urls: {
    labelmap: string;
    versions: string;
    interpolate: string;
    sessions: string;
    events_template: string;
    submit: string;
    timing: string;
  };
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
