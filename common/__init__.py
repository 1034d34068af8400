"""Small pieces shared by every app (imports nothing of ours)."""
