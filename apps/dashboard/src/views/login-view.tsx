import { useState } from "preact/hooks";

/** Asks for cortex's admin token; it is kept for this browser session only. */
export const LoginView = ({
  message,
  onSubmit,
}: {
  message: string | null;
  onSubmit: (token: string) => void;
}) => {
  const [token, setToken] = useState("");
  return (
    <main class="login">
      <form
        class="login-card"
        aria-labelledby="login-title"
        onSubmit={(event) => {
          event.preventDefault();
          onSubmit(token.trim());
        }}
      >
        <h1 id="login-title">Cortex</h1>
        <p class="muted">
          Enter the admin token (<code>admin_token</code> in cortex.yaml). It is kept for this
          browser session only.
        </p>
        <label for="token">Admin token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="current-password"
          data-testid="token-input"
          value={token}
          onInput={(event) => setToken(event.currentTarget.value)}
          required
        />
        {message !== null && (
          <p class="banner banner-bad" role="alert" data-testid="login-error">
            {message}
          </p>
        )}
        <button type="submit" class="primary" data-testid="sign-in">
          Sign in
        </button>
      </form>
    </main>
  );
};
