/** The server's minimum password length (server/src/auth/passwords.rs `MIN_PASSWORD_CHARS`). */
export const MIN_PASSWORD = 8;
