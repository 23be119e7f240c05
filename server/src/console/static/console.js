// Progressive enhancement only: every page works without it.
document.addEventListener('click', async (e) => {
  const button = e.target.closest('button[data-copy]');
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const status = button.parentElement.querySelector('.copied');
  try {
    await navigator.clipboard.writeText(field.value);
    if (status) status.textContent = 'Copied';
  } catch {
    field.select(); // the clipboard API needs a secure context: leave it selected for Ctrl+C
    if (status) status.textContent = 'Selected: press Ctrl+C to copy';
  }
});
// A new secret is the answer to a POST: point the address bar at the Security page so that a
// reload shows the masked list instead of submitting the form again.
const reveal = document.querySelector('[data-reveal-page]');
if (reveal) history.replaceState(null, '', reveal.dataset.revealPage);
