import './style.css';
import { boot } from './workstation';

const root = document.getElementById('workstation');
if (root) {
  boot(root).catch((err) => {
    console.error(err);
    root.dataset.error = String(err);
    const status = root.querySelector('#viewer-status') ?? root.appendChild(document.createElement('div'));
    status.textContent = `The workstation could not start: ${err}`;
    (window.contourTrial ?? ({} as Record<string, unknown>)).errors?.push?.(String(err));
  });
}
