// The admin token lives in sessionStorage: it survives reloads of this tab and is gone when the
// browser session ends. Storage can be unavailable (privacy modes); then it lives in memory only.

const KEY = "cortex.adminToken";

export const readToken = (): string | null => {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
};

export const saveToken = (token: string): void => {
  try {
    sessionStorage.setItem(KEY, token);
  } catch {
    // Kept in memory by the app for this page only.
  }
};

export const forgetToken = (): void => {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // Nothing stored.
  }
};

/**
 * A cortex without an admin token lets the empty token in: there is nothing to sign out of, and
 * signing out would only show the sign-in form again for no token.
 */
export const canSignOut = (token: string): boolean => token !== "";
