enum EdgePlaceholder {}
