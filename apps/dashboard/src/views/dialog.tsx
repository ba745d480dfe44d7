import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";

/** A modal confirmation: Escape or the backdrop cancels, the first control gets focus. */
export const Dialog = ({
  title,
  children,
  confirmLabel,
  busy,
  onConfirm,
  onCancel,
  danger = false,
}: {
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  busy: boolean;
  onConfirm: () => void;
  onCancel: () => void;
  danger?: boolean;
}) => {
  const box = useRef<HTMLFormElement>(null);
  useEffect(() => {
    box.current?.querySelector<HTMLElement>("select, input, button.confirm")?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") onCancel();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onCancel]);
  return (
    <div
      class="backdrop"
      onClick={(event) => {
        if (event.target === event.currentTarget) onCancel();
      }}
      onKeyDown={() => {}}
      role="dialog"
      aria-modal="true"
      aria-labelledby="dialog-title"
    >
      <form
        ref={box}
        class="card dialog"
        aria-labelledby="dialog-title"
        data-testid="confirm-dialog"
        onSubmit={(event) => {
          event.preventDefault();
          onConfirm();
        }}
      >
        <h2 id="dialog-title">{title}</h2>
        {children}
        <div class="dialog-actions">
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
          <button
            type="submit"
            class={danger ? "confirm danger" : "confirm primary"}
            disabled={busy}
            data-testid="confirm"
          >
            {confirmLabel}
          </button>
        </div>
      </form>
    </div>
  );
};
