module github.com/quantkit/quantkit/cpu/_gen

go 1.26.0

replace github.com/quantkit/quantkit => ../..
