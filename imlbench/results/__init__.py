"""Result records, leaderboards and plots: pure functions of what the runner stored."""
