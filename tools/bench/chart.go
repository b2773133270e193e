package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// chartCols is the number of setting panels per row.
const chartCols = 3

// writeChart writes path as an SVG with one bar panel per setting: msgs/s of the baseline beside
// each variant. Each panel has its own scale, since settings differ by orders of magnitude (a 20 ms
// receiver one request at a time against a zero-latency one).
func writeChart(path, name string, res Result) error {
	if len(res.Groups) == 0 {
		return fmt.Errorf("%s: no results to chart", name)
	}
	cols := min(chartCols, len(res.Groups))
	rows := (len(res.Groups) + cols - 1) / cols
	panels := make([][]*plot.Plot, rows)
	for i := range panels {
		panels[i] = make([]*plot.Plot, cols)
	}
	for i, g := range res.Groups {
		p, err := panel(g)
		if err != nil {
			return err
		}
		panels[i/cols][i%cols] = p
	}
	c := vgsvg.New(vg.Length(cols)*2.8*vg.Inch, vg.Length(rows)*2.6*vg.Inch)
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 6,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(panels, tiles, dc)
	for r := range panels {
		for col, p := range panels[r] {
			if p != nil {
				p.Draw(canvases[r][col])
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// panel is one setting's bars, the baseline first, each labelled with its rate.
func panel(g Group) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = g.Setting
	p.Y.Label.Text = "msgs/s"
	p.Y.Min = 0
	p.Y.Tick.Marker = wholeTicks{}
	labels := make([]string, len(g.Rows))
	var top float64
	for i, r := range g.Rows {
		bars, err := plotter.NewBarChart(plotter.Values{r.Rate}, vg.Points(28))
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", g.Setting, r.Variant, err)
		}
		bars.XMin = float64(i)
		bars.Color = plotutil.Color(i)
		if i == 0 {
			bars.Color = baselineGray
		}
		bars.LineStyle.Width = 0
		value, err := plotter.NewLabels(plotter.XYLabels{
			XYs:    plotter.XYs{{X: float64(i), Y: r.Rate}},
			Labels: []string{fmt.Sprintf("%.0f", r.Rate)},
		})
		if err != nil {
			return nil, err
		}
		for j := range value.TextStyle {
			value.TextStyle[j].XAlign = text.XCenter
		}
		value.Offset = vg.Point{Y: vg.Points(3)}
		p.Add(bars, value)
		labels[i] = wrap(r.Variant, 14)
		top = max(top, r.Rate)
	}
	p.Y.Max = top * 1.2
	if top == 0 {
		p.Y.Max = 1
	}
	p.NominalX(labels...)
	return p, nil
}

// baselineGray sets the baseline apart from the variants judged against it.
var baselineGray = color.Gray{Y: 0xa0}

// wholeTicks labels the default ticks without decimals: rates are whole messages per second.
type wholeTicks struct{}

func (wholeTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', 0, 64)
		}
	}
	return ticks
}

// wrap breaks s into lines of about width characters at spaces, for the X axis labels.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 && n+1+len(w) > width {
			b.WriteByte('\n')
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
