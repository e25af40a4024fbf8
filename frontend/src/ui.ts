/** DOM for the workstation, created inside #workstation (ids/attributes are the page hooks tests use). */
import { WL_PRESETS, type Manifest } from './manifest';

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K, attrs: Record<string, string | number | boolean> = {}, ...children: Array<Node | string>
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false) continue;
    if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) el.append(c);
  return el;
}

export const TOOLS: Array<[string, string, string]> = [
  ['brush', 'Brush', 'b'],
  ['eraser', 'Eraser', 'e'],
  ['freehand', 'Freehand fill', 'f'],
  ['threshold', 'SUV threshold brush', 't'],
  ['windowlevel', 'Window/level', ''],
  ['pan', 'Pan', ''],
  ['zoom', 'Zoom', ''],
  ['crosshairs', 'Crosshairs', ''],
];

export const SHORTCUTS: Array<[string, string]> = [
  ['b / e / f / t', 'Brush / eraser / freehand fill / SUV threshold brush'],
  ['[ / ]', 'Brush radius −1 / +1 mm'],
  ['1 – 5', `W/L presets: ${WL_PRESETS.map(([n, w, c]) => `${n} ${w}/${c}`).join(', ')}`],
  ['Ctrl+Z / Ctrl+Y', 'Undo / redo'],
  ['o', 'Outline / fill display'],
  ['p', 'PET overlay on / off'],
  ['u', 'Uncertainty heat map on / off (AI arm)'],
  ['a', 'Untouched AI proposal outline on / off (AI arm)'],
  ['i', 'Interpolate the active segment between edited slices'],
  ['r', 'Reset views'],
  ['Wheel / middle drag / right drag', 'Scroll slices / pan / zoom'],
  ['?', 'This sheet'],
];

export interface UI {
  root: HTMLElement;
  toolbar: HTMLElement;
  viewports: Record<'axial' | 'sagittal' | 'coronal', HTMLDivElement>;
  sliceInfo: Record<'axial' | 'sagittal' | 'coronal', HTMLElement>;
  status: HTMLElement;
  saveState: HTMLElement;
  volume: HTMLElement;
  timer: HTMLElement;
  brushSize: HTMLElement;
  petOpacity: HTMLInputElement;
  suvMax: HTMLInputElement;
  thresholdMin: HTMLInputElement;
  thresholdMax: HTMLInputElement;
  segmentSelect: HTMLSelectElement | null;
  submitButton: HTMLButtonElement;
  submitDialog: HTMLDialogElement;
  submitPassword: HTMLInputElement;
  submitConfirm: HTMLButtonElement;
  submitCancel: HTMLButtonElement;
  submitError: HTMLElement;
  lockedBanner: HTMLElement;
  conflictBanner: HTMLElement;
  pauseButton: HTMLButtonElement;
  pauseOverlay: HTMLElement;
  resumeButton: HTMLButtonElement;
  help: HTMLDialogElement;
  guessDialog: HTMLDialogElement;
  guessError: HTMLElement;
  buttons: Record<string, HTMLButtonElement>;
}

export function buildUI(root: HTMLElement, m: Manifest): UI {
  root.textContent = '';
  root.classList.add('ct-workstation');
  const buttons: Record<string, HTMLButtonElement> = {};
  const btn = (key: string, label: string, attrs: Record<string, string> = {}, title = '') => {
    const b = h('button', { type: 'button', title: title || label, ...attrs, text: label });
    buttons[key] = b;
    return b;
  };

  const toolGroup = h('div', { class: 'ct-group', role: 'group', 'aria-label': 'Tools' });
  for (const [tool, label, key] of TOOLS) {
    toolGroup.append(btn(`tool:${tool}`, label, { 'data-tool': tool }, key ? `${label} (${key})` : label));
  }
  const presetGroup = h('div', { class: 'ct-group', role: 'group', 'aria-label': 'Window/level presets' });
  WL_PRESETS.forEach(([name, w, c], i) => presetGroup.append(btn(`preset:${i + 1}`, `${i + 1} ${name}`, { 'data-preset': String(i + 1) }, `${name} W${w} L${c} (${i + 1})`)));
  const viewGroup = h('div', { class: 'ct-group', role: 'group', 'aria-label': 'Display' });
  viewGroup.append(
    btn('undo', 'Undo', { 'data-action': 'undo' }, 'Undo (Ctrl+Z)'),
    btn('redo', 'Redo', { 'data-action': 'redo' }, 'Redo (Ctrl+Y)'),
    btn('interpolate', 'Interpolate', { 'data-action': 'interpolate' }, 'Interpolate the active segment between edited slices (i)'),
    btn('outline', 'Outline', { 'data-action': 'outline', 'aria-pressed': 'false' }, 'Outline / fill display (o)'),
    btn('pet', 'PET', { 'data-action': 'pet', 'aria-pressed': 'true' }, 'PET overlay on/off (p)'),
  );
  if (m.proposal) {
    viewGroup.append(
      btn('uncertainty', 'Uncertainty', { 'data-action': 'uncertainty', 'aria-pressed': 'false' }, 'Uncertainty heat map (u)'),
      btn('aioutline', 'AI outline', { 'data-action': 'aioutline', 'aria-pressed': 'false' }, 'Untouched AI proposal outline (a)'),
    );
  }
  viewGroup.append(btn('reset', 'Reset', { 'data-action': 'reset' }, 'Reset views (r)'), btn('help', '?', { 'data-action': 'help' }, 'Keyboard shortcuts (?)'));
  const pauseButton = btn('pause', 'Pause', { id: 'pause-button', 'data-action': 'pause' }, 'Pause the session timer and hide the images');
  const submitButton = btn('submit', m.signature?.button ?? 'Submit GTV…', { id: 'submit-button', class: 'ct-primary' });
  const toolbar = h('div', { class: 'ct-toolbar' }, toolGroup, presetGroup, viewGroup, h('div', { class: 'ct-spacer' }), pauseButton, submitButton);

  const names = ['axial', 'sagittal', 'coronal'] as const;
  const viewports = {} as UI['viewports'];
  const sliceInfo = {} as UI['sliceInfo'];
  const grid = h('div', { class: 'ct-viewports' });
  for (const n of names) {
    const vp = h('div', { id: `viewport-${n}`, class: 'ct-viewport', 'data-orientation': n });
    vp.addEventListener('contextmenu', (e) => e.preventDefault());
    const info = h('div', { class: 'ct-slice-info', id: `slice-${n}`, text: n });
    const cell = h('div', { class: 'ct-viewport-cell' }, vp, info);
    viewports[n] = vp;
    sliceInfo[n] = info;
    grid.append(cell);
  }
  const pauseOverlay = h('div', { class: 'ct-pause-overlay', id: 'pause-overlay', hidden: true });
  const resumeButton = h('button', { type: 'button', id: 'resume-button', class: 'ct-primary', text: 'Resume' });
  pauseOverlay.append(h('p', { text: 'Paused — the images are hidden and the timer is stopped.' }), resumeButton);
  grid.append(pauseOverlay);

  const status = h('div', { class: 'ct-status', id: 'viewer-status', role: 'status', text: 'Loading case…' });
  const saveState = h('div', { id: 'save-state', 'data-state': 'saved', 'data-version': String(m.latest_version?.number ?? 0), text: 'Loading…' });
  const volume = h('div', { id: 'gtv-volume', 'data-cc': '0', text: 'GTV — cm³' });
  const timer = h('div', { id: 'session-timer', title: 'Time on this case in this session (pauses excluded)', text: '00:00' });
  const brushSize = h('span', { id: 'brush-size', text: '' });
  const petOpacity = h('input', { id: 'pet-opacity', type: 'range', min: 0, max: 100, value: 90, step: 1, 'aria-label': 'PET opacity' });
  const suvMax = h('input', { id: 'suv-max', type: 'number', min: 0.5, max: 100, step: 0.5, value: 8, 'aria-label': 'SUV window maximum' });
  const thresholdMin = h('input', { id: 'threshold-min', type: 'number', min: 0, step: 0.1, value: 2.5, 'aria-label': 'SUV threshold lower' });
  const thresholdMax = h('input', { id: 'threshold-max', type: 'number', min: 0, step: 0.1, value: 100, 'aria-label': 'SUV threshold upper' });
  let segmentSelect: HTMLSelectElement | null = null;

  const side = h('aside', { class: 'ct-side' });
  side.append(
    h('h2', { text: `${m.title ?? m.trial_number ?? ''}` }),
    h('p', {
      class: 'ct-arm',
      text: m.mode === 'review' ? 'Blinded panel review' : m.proposal ? `AI-assisted: starts from ${m.proposal.model}` : 'Manual delineation',
    }),
    h('div', { class: 'ct-row' }, h('span', { text: 'Session ' }), timer),
    h('div', { class: 'ct-row' }, h('span', { text: 'Save ' }), saveState),
    h('div', { class: 'ct-row ct-volume' }, volume),
  );
  if (m.segments.length > 1) {
    segmentSelect = h('select', { id: 'segment-select', 'aria-label': 'Active segment' });
    for (const s of m.segments) segmentSelect.append(h('option', { value: s.index, text: `${s.index} ${s.label}` }));
    side.append(h('label', { class: 'ct-field' }, 'Segment ', segmentSelect));
  } else if (m.segments.length === 1) {
    side.append(h('p', { class: 'ct-field', text: `Segment: ${m.segments[0].label}` }));
  }
  side.append(
    h('div', { class: 'ct-field' }, 'Brush radius ', brushSize, h('small', { text: ' ([ / ])' })),
    h('fieldset', { class: 'ct-fieldset' }, h('legend', { text: 'SUV threshold brush' }),
      h('label', {}, 'SUV ≥ ', thresholdMin), h('label', {}, ' ≤ ', thresholdMax)),
  );
  if (m.pet) {
    side.append(
      h('fieldset', { class: 'ct-fieldset' }, h('legend', { text: 'PET' }),
        h('label', { class: 'ct-field' }, 'Opacity ', petOpacity),
        h('label', { class: 'ct-field' }, 'SUV window 0 – ', suvMax)),
    );
  }
  side.append(status);

  const lockedBanner = h('div', { id: 'locked-banner', class: 'ct-banner ct-locked', hidden: true, text: 'Submitted and locked — this GTV can no longer be edited.' });
  const conflictBanner = h('div', { id: 'conflict-banner', class: 'ct-banner ct-conflict', hidden: true, role: 'alert' });

  const submitPassword = h('input', { id: 'submit-password', type: 'password', autocomplete: 'current-password', required: true });
  const submitConfirm = h('button', { type: 'button', id: 'submit-confirm', class: 'ct-primary', text: 'Sign and submit' });
  const submitCancel = h('button', { type: 'button', id: 'submit-cancel', text: 'Cancel' });
  const submitError = h('p', { id: 'submit-error', class: 'ct-error', role: 'alert', hidden: true });
  const submitDialog = h('dialog', { id: 'submit-dialog', class: 'ct-dialog' },
    h('h2', { text: 'Submit the GTV' }),
    h('p', { text: m.signature?.statement ?? 'Electronic signature. By entering your password you state: “I submit this GTV” as the delineation of this case. It cannot be edited afterwards.' }),
    h('label', { class: 'ct-field' }, 'Password ', submitPassword),
    submitError,
    h('div', { class: 'ct-dialog-buttons' }, submitCancel, submitConfirm),
  );
  const helpList = h('dl', { class: 'ct-shortcuts' });
  // The manual arm's page names nothing of a model, not even in the help.
  const shortcuts = m.proposal ? SHORTCUTS : SHORTCUTS.filter(([k]) => k !== 'u' && k !== 'a');
  for (const [k, d] of shortcuts) helpList.append(h('dt', { text: k }), h('dd', { text: d }));
  const helpClose = h('button', { type: 'button', text: 'Close' });
  const help = h('dialog', { id: 'shortcut-sheet', class: 'ct-dialog' }, h('h2', { text: 'Keyboard shortcuts' }), helpList, helpClose);
  helpClose.addEventListener('click', () => help.close());

  const guessError = h('p', { id: 'guess-error', class: 'ct-error', role: 'alert', hidden: true });
  const guessDialog = h('dialog', { id: 'guess-dialog', class: 'ct-dialog' },
    h('h2', { text: 'Which arm do you think this case was?' }),
    h('p', { text: 'Your answer measures how well the blinding held; it changes nothing in the approved GTV.' }),
    h('div', { class: 'ct-dialog-buttons' },
      h('button', { type: 'button', 'data-guess': 'ai', text: 'AI-assisted' }),
      h('button', { type: 'button', 'data-guess': 'manual', text: 'Manual' }),
      h('button', { type: 'button', 'data-guess': 'dont_know', text: "Don't know" }),
    ),
    guessError,
  ) as HTMLDialogElement;
  root.append(toolbar, lockedBanner, conflictBanner, h('div', { class: 'ct-main' }, grid, side), submitDialog, help);
  if (m.urls.guess) root.append(guessDialog);
  return {
    root, toolbar, viewports, sliceInfo, status, saveState, volume, timer, brushSize, petOpacity, suvMax, thresholdMin,
    thresholdMax, segmentSelect, submitButton, submitDialog, submitPassword, submitConfirm, submitCancel, submitError,
    lockedBanner, conflictBanner, pauseButton, pauseOverlay, resumeButton, help, guessDialog, guessError, buttons,
  };
}

export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  const p = (n: number) => String(n).padStart(2, '0');
  return hh > 0 ? `${hh}:${p(mm)}:${p(ss)}` : `${p(mm)}:${p(ss)}`;
}
